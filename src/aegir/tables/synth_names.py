"""Label -> value generator registry for the synthetic tables (overview in `synth.py`).

Holds the entity-name generators (hotel, restaurant, person, ... names), the `GENERATORS`
registry over the SOTAB V2 CTA labels, `SUPPORTED_LABELS` and `generate_column`. Structured
formats live in `synth_values.py`, titles and free text in `synth_text.py`.
"""

from __future__ import annotations

import random
import threading

from faker import Faker
from faker.config import AVAILABLE_LOCALES

from aegir.tables import synth_enums as E
from aegir.tables import synth_text as T
from aegir.tables import synth_values as V
from aegir.tables.synth_text import words


# --- entity names (label generators that are names rather than formats) ---------------------
def _person(c: V.ValueContext) -> str:
    return c.fake.name()


def gen_person(c: V.ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(4)

    def one() -> str:
        if style == 1:
            return f"{c.fake.last_name()}, {c.fake.first_name()}"
        if style == 2 and c.rng.random() < 0.4:  # co-authors written in one cell
            return f"{c.fake.name()} {c.fake.name()}"
        if style == 3:
            return f"{c.fake.first_name()[0]}. {c.fake.last_name()}"
        return c.fake.name()

    return V.many(n, one)


_PUBLISHERS = words("Penguin Random House|HarperCollins|Little Tiger Press|B Jain Publishers|Simon & Schuster|"
                 "Macmillan|Hachette|Gallimard|Suhrkamp|Editorial Planeta|Mondadori|Companhia das Letras|"
                 "Oxford University Press|Cambridge University Press|Wiley|Springer|O'Reilly Media|Scholastic")


def gen_organization(c: V.ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(3)
    fn = (lambda: c.rng.choice(_PUBLISHERS), c.fake.company, c.fake.name)[style]
    return V.many(n, fn)


def _named(template_pool: tuple[str, ...], extra: dict[str, T.Slot], schemes: tuple[int, int] = (1, 3)) -> V.Gen:
    """A name generator from `{slot}` templates. `schemes`: how many templates one column uses."""

    def gen(c: V.ValueContext, n: int) -> list[str]:
        slots: dict[str, T.Slot] = {
            "job": lambda: c.fake.job(), "last": lambda: c.fake.last_name(), "city": lambda: V.city(c),
            "first": lambda: c.fake.first_name(), "last_up": lambda: c.fake.last_name().upper(),
            "noun": T.NOUN, "adj": T.ADJ, **extra}
        # one site tends to share a naming scheme: restrict the column to a few templates
        tpls = c.rng.sample(template_pool, min(len(template_pool), c.rng.randint(*schemes)))
        return V.many(n, lambda: T.fill(c.rng.choice(tpls), c.rng, slots))

    return gen


gen_hotel = _named(words("Hotel {last}|{city} Grand Hotel|{brand} {city} {kind}|{adj} {noun} {kind}|"
                      "{last} House Hotel {city}|Abades {city} {stars}* Hotel|{noun} Lodge|{city} Marriott"),
                   {"brand": words("Holiday Inn Express|Aloft|La Quinta Inn|Best Western|Ibis|Novotel|Hilton Garden Inn|"
                                "Radisson|Somerset"), "kind": words("Hotel|Suites|Resort & Spa|Inn|Apartments|Hostel"),
                    "stars": words("3|4|5")})
gen_restaurant = _named(words("{last}'s {kind}|The {noun} {kind}|{adj} {noun}|Osteria {noun}|{first}'s {cuisine} {kind}|"
                           "{cuisine} Kitchen|Café {last}|{kind} {last}|{last}'s Pizza|{noun}|{noun} {dish} House|"
                           "{cuisine} {kind} & Bar|{noun} Sushi Bar|Sapori di {city}|{first}'s Kitchen|"
                           "{noun} Food and Beverage|{n} Corners Grill & Tap|{last}'s Pizza & Pasta"),
                        {"kind": words("Restaurant|Grill|Bistro|Pub and Grill|Cafe|Trattoria|Diner|Brasserie"),
                         "cuisine": words("Thai|Texas Style|Italian|Sushi|Mexican|Greek|Indian|Vegan|Chinese"),
                         "dish": words("Noodle|Seafood|Burger|Taco|Dumpling|Steak|Waffle"), "n": words("3|4|5|7")})
gen_local_business = _named(words("{last} {trade}|{city} {trade}|{adj} {noun} {trade}|{first} {last}, {trade}|"
                               "Access Storage - {city}|{last} & Sons {trade}|A1 {trade}"),
                            {"trade": words("Plumbing|Bail Bonds|Dental Care|Law Firm|Auto Repair|Hair Salon|Storage|"
                                         "Realty|Fitness|Carpet Cleaning|Insurance Agency|Pharmacy|Bakery|Roofing|"
                                         "Pest Control|Veterinary Clinic|Tattoo Studio|Florist|Daycare|Movers|"
                                         "Chiropractic|Locksmith|Photography|Productions|Accounting|Landscaping")})
gen_museum = _named(words("{city} Museum|National Museum of {country}|Museum of {topic}|{last} Castle|{city} Art Gallery|"
                       "The {last} Collection|{city} Historical Society Museum|Musée {last}"),
                    {"country": words("Singapore|Denmark|Scotland|Ireland|Mexico|Japan"),
                     "topic": words("Natural History|Modern Art|Fashion|Science|Transport|Childhood|Fine Arts")})
gen_place = _named(words("{city} Stadium|{last} Park|{city} Community Hall|St. {first}'s Church|{last} Auditorium|"
                      "ONLINE|{city} Public Library|{noun} Theatre|{last} Convention Center"), {})
gen_event_name = _named(words("{adj} {noun} Festival|Board Meeting|Game Night|{city} Jazz Night|Memorial Service|"
                           "{topic} Workshop|Yoga in the Park|Annual {noun} Gala|{city} Farmers Market|"
                           "Live Music: {first} {last}|Story Time|{noun} Concert|Workforce Development: Drop-in Job Help|"
                           "{first} {last} at The {noun} in {city}|{adj} {noun} {dow} {mon} {d}, {h}:00 PM|"
                           "{city} Open House|Postponed: {adj} {noun} The Musical|Virtual Event: {topic} Webinar|"
                           "{topic} Self-Study Program|{noun} Chili Supper|Open Day {mon} {year}|{dow} Run Club"),
                        {"topic": T.TOPIC, "dow": words("Mon|Tue|Wed|Thu|Fri|Sat|Sun"),
                         "mon": words("Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"),
                         "d": words("1|4|9|12|15|20|24|28"), "h": words("6|7|8"), "year": words("2019|2020|2021")},
                        schemes=(2, 6))  # a calendar lists unrelated events
gen_sports_event = _named(words("{team} vs. {team}|{team} v {team}|{first} {last} vs {first} {last}|"
                             "{city} Marathon|{team} at {team}|{city} {noun} 5K|Rugged Maniac - {city}"),
                          {"team": words("Toronto|Pittsburgh|Weston Bears|Newcastle Jets|Real Salt Lake|NY Red Bulls|"
                                      "Partizan|Levante|Red Sox Uden|Lake Macquarie Roosters|Chicago Fire|Ajax")})
gen_job_title = _named(words("{level} {role}|{role}|{role} - {city}|{role} ({spec})|{level} {role} - {spec}|{job}|{job}|"
                          "{job} - {city}|{job} (m/w/d)"),
                       {"level": words("Senior|Junior|Lead|Principal|Trainee|Apprentice|Journeyman|Assistant"),
                        "role": words("Software Engineer|Data Scientist|Registered Nurse|Plumber|Account Manager|"
                                   "Dental Assistant|Tax Manager|Electrician|Truck Driver|Sales Associate|Barista"),
                        "spec": words("Remote|NLP|Backend|Night Shift|Computer Vision|Part-time|iOS")})
gen_sports_team = _named(words("{team}|{team} {team}|{country}"),
                         {"team": words("Real Salt Lake|Minnesota United|Philadelphia Union|Levante|Ludogorets|"
                                     "Weston Workers|Newcastle Jets|Team Solo Mid|Counter Logic Gaming|Chicago Bulls"),
                          "country": words("Jamaica|Brazil|Tanzania|Andorra|Germany|Japan|Argentina")})
gen_brand = _named(words("{brand}|{brand}|{chain}|{chain}|{last}|{last} & Co|{adj} {noun}|{city} {trade}"),
                   {"brand": T.PRODUCT_BRAND, "trade": words("Pool Service|Funeralcare|Handmade|Tyres|Motors"),
                    "chain": words("Somerset Serviced Residence|FabHotels|Extended Stay America|Ascott The Residence|"
                                "Greene King Inns|Citadines Apart'hotel|Evenia Hotels|Marriott|Hilton|Accor|"
                                "Best Western|IHG|Maytag|Budget|Hertz|Premier Inn|Travelodge|Holiday Extras")})
gen_artist = _named(words("{first} {last}|{first} {last}|The {adj} {noun}s|{last}|Various|{mono}|{first} {last} {first} {last}|"
                       "{first} {last_up}|{noun} {noun} Orchestra"),
                    {"mono": words("Ilaiyaraaja|Moby|Vangelis|Enya|Yanni|Kitaro|Sade|Björk|Rihanna|Shakira|Adele|Drake")})
gen_creative_name = _named(words("{adj} {noun}|{topic} in {city}, {state}|{first} {last}|Board Meeting|"
                              "{noun} # {num}|I would like a peer support person"),
                           {"topic": words("Furnace Installation|Sales and Installation|Roof Repair"),
                            "state": words("MI|OH|TX|CA"), "num": words("12|30|7|101")})


def gen_series(c: V.ValueContext, n: int) -> list[str]:
    return V.many(n, lambda: c.rng.choice(T.TV_SERIES))


def gen_episode(c: V.ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(3)
    return V.many(n, lambda: (f"{c.rng.choice(T.TV_SERIES)} Season {c.rng.randint(1, 15)} Episode {c.rng.randint(1, 24)}",
                               f"Episode {c.rng.randint(1, 24)}: The {c.rng.choice(T.ADJ)} {c.rng.choice(T.NOUN)}",
                               f"{c.rng.randint(1, 24)} серия")[style])


def _text(fn):
    return lambda c, n: V.many(n, lambda: fn(c))


_HTML_WRAPS = (("<p>", "</p>"), ("&lt;p&gt;", "&lt;/p&gt;"), ("<p><strong>", "</strong></p>"),
               ('<p><span style=\\"font-size: 10pt;\\">', "</span></p>"), ("<h2>Summary:</h2>", "<br>"))


def _desc(domain: str) -> V.Gen:
    def gen(c: V.ValueContext, n: int) -> list[str]:
        # CMS-exported descriptions often keep their markup, raw or entity-escaped (one per site)
        pre, post = c.rng.choice(_HTML_WRAPS) if c.rng.random() < 0.2 else ("", "")
        return V.many(n, lambda: pre + T.description(domain, c.rng, c.rng.choice((1, 1, 2))) + post)

    return gen


def gen_item_list(c: V.ValueContext, n: int) -> list[str]:
    steps = {"Recipe": True, "MusicAlbum": False}.get(c.domain, c.rng.random() < 0.6)
    fn = T.recipe_steps if steps else T.track_list
    return V.many(n, lambda: fn(c.rng))


GENERATORS: dict[str, V.Gen] = {
    "addressLocality": V.gen_locality, "postalCode": V.gen_postal_code, "addressRegion": V.gen_region,
    "Country": V.gen_country, "priceRange": V.gen_price_range, "Hotel/name": gen_hotel,
    "telephone": V.gen_phone, "faxNumber": V.gen_fax, "Date": V.gen_date, "Restaurant/name": gen_restaurant,
    "paymentAccepted": E.gen_payment, "DayOfWeek": V.gen_day_of_week, "Review": _text(lambda c: T.review(c.rng, c.locale)),
    "Organization": gen_organization, "DateTime": V.gen_datetime, "MusicAlbum/name": _text(lambda c: T.album_title(c.rng)),
    "MusicArtistAT": gen_artist, "MusicRecording/name": _text(lambda c: T.song_title(c.rng)), "Photograph": V.gen_photo,
    "CoordinateAT": V.gen_coordinate, "Event/name": gen_event_name, "EventAttendanceModeEnumeration": E.gen_attendance,
    "EventStatusType": E.gen_event_status, "currency": V.gen_currency, "email": V.gen_email, "Time": V.gen_time,
    "LocationFeatureSpecification": E.gen_features, "Duration": V.gen_duration, "Event/description": _desc("Event"),
    "Rating": E.gen_rating, "Hotel/description": _desc("Hotel"), "CreativeWork": E.gen_youtube_id,
    "JobPosting/name": gen_job_title, "Museum/name": gen_museum, "Movie/description": _desc("Movie"),
    "JobPosting/description": _desc("JobPosting"), "Book/description": _desc("Book"),
    "Recipe/description": _desc("Recipe"), "Product/description": _desc("Product"), "RestrictedDiet": E.gen_diet,
    "GenderType": E.gen_gender, "CreativeWorkSeries": gen_series, "DeliveryMethod": E.gen_delivery,
    "Boolean": E.gen_boolean, "MonetaryAmount": V.gen_monetary_amount, "TVEpisode/name": gen_episode,
    "workHours": E.gen_work_hours, "OccupationalExperienceRequirements": E.gen_experience,
    "unitText": E.gen_unit_text, "SportsTeam": gen_sports_team, "ProductModel": E.gen_product_model,
    "openingHours": V.gen_opening_hours, "Language": E.gen_language, "CreativeWork/name": gen_creative_name,
    "SportsEvent/name": gen_sports_event, "BookFormatType": E.gen_book_format, "CategoryCode": E.gen_category_code,
    "OfferItemCondition": E.gen_condition, "EducationalOccupationalCredential": E.gen_credential,
    "Energy": E.gen_energy, "PostalAddress": V.gen_postal_address, "Brand": gen_brand, "ItemList": gen_item_list,
    "LocalBusiness/name": gen_local_business, "unitCode": E.gen_unit_code, "Distance": E.gen_distance,
    "category": E.gen_category, "Recipe/name": _text(lambda c: T.recipe_name(c.rng)),
    "Movie/name": _text(lambda c: T.movie_title(c.rng, c.locale)), "Product/name": _text(lambda c: T.product_name(c.rng)),
    "QuantitativeValue": E.gen_quantitative, "Book/name": _text(lambda c: T.book_title(c.rng, c.locale, lambda: _person(c))),
    "weight": E.gen_weight, "ItemAvailability": E.gen_availability, "streetAddress": V.gen_street, "URL": V.gen_url,
    "IdentifierAT": E.gen_identifier, "price": V.gen_price, "Place/name": gen_place, "Number": E.gen_number,
    "Mass": E.gen_mass, "Person/name": gen_person,
}
SUPPORTED_LABELS: tuple[str, ...] = tuple(sorted(GENERATORS))


# --- Faker instances ---------------------------------------------------------------------------
# Building a Faker costs ~20 ms per locale, so instances are cached per thread. This is not
# hidden state: every use re-seeds the instance from the caller's rng (`seed_instance`) first,
# so outputs never depend on what was generated before.
_LOCAL = threading.local()
# Provider lists that Faker builds from a set, so their order (and every seeded draw from them)
# changed with PYTHONHASHSEED, i.e. from one process to the next. Found by dumping every list
# attribute of every available locale under two hash seeds (Faker 40.x); sorted once per instance.
# tests/tables/test_synth.py regenerates tables under two hash seeds to catch new ones.
_HASH_ORDERED: dict[str, tuple[str, ...]] = {"it_IT": ("cities",)}


def _faker(locale: str, seed: int) -> Faker:
    cache: dict[str, Faker] = getattr(_LOCAL, "fakers", None) or {}
    _LOCAL.fakers = cache
    if locale not in cache:
        f = Faker(locale)
        for prov in f.providers:
            for name in _HASH_ORDERED.get(locale, ()):
                if isinstance(getattr(prov, name, None), list):
                    setattr(prov, name, sorted(getattr(prov, name)))  # instance attribute; the class keeps its own
        cache[locale] = f
    f = cache[locale]
    f.seed_instance(seed)
    return f


def check_locale(locale: str) -> None:
    if locale not in AVAILABLE_LOCALES:
        raise ValueError(f"synthetic tables: unknown Faker locale {locale!r} (e.g. en_US, de_DE, fr_FR, ja_JP)")


def generate_column(label: str, n: int, rng: random.Random, locale: str = "en_US", *, domain: str = "") -> list[str]:
    """n credible cell values for one column of SOTAB CTA type `label`, in one column style."""
    if label not in GENERATORS:
        raise ValueError(f"synthetic tables: no generator for label {label!r}; supported: {', '.join(SUPPORTED_LABELS)}")
    if n < 0:
        raise ValueError(f"synthetic tables: n must be >= 0, got {n}")
    check_locale(locale)
    ctx = V.ValueContext(rng=rng, locale=locale, fake=_faker(locale, rng.getrandbits(63)), domain=domain)
    return [str(v) for v in GENERATORS[label](ctx, n)]
