import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The model tests use tiny tensors: with other processes on the 2 cores, OpenMP threads
    spin-wait on each other and a 2-thread run is several times slower than a 1-thread one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
