"""Training: optimizer groups and schedule, pretraining, fine-tuning, data-parallel wiring."""
