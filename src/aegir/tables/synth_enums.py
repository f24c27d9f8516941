"""Enumeration-like, code-like and quantity value generators (Schema.org enums, identifiers,
model numbers, lists, numbers with units) for `synth.py`.

Same contract as `synth_values.py`: `gen(c: ValueContext, n) -> list[str]`, one style per column.
Schema.org enumerations appear on the web as bare terms (`InStock`), or with an `http://` or
`https://schema.org/` prefix, chosen once per column (one site, one template).
"""

from __future__ import annotations

from aegir.tables import synth_text as T
from aegir.tables.synth_text import words
from aegir.tables.synth_values import ValueContext, enum_column, many, schema_url


# --- enumerations -----------------------------------------------------------------------------
def gen_boolean(c: ValueContext, n: int) -> list[str]:
    t, f = c.rng.choice((("true", "false"), ("True", "False"), ("yes", "no"), ("1", "0")))
    p = c.rng.choice((0.9, 0.7, 0.5))
    return many(n, lambda: t if c.rng.random() < p else f)


def gen_gender(c: ValueContext, n: int) -> list[str]:
    pool = c.rng.choice((("Male", "Female"), ("male", "female"), ("M", "F"), ("Männlich", "Weiblich"),
                         ("https://schema.org/Male", "https://schema.org/Female")))
    return many(n, lambda: c.rng.choice(pool))


_LANG_NAMES = {
    "en": words("English|German|French|Spanish|Italian|Japanese"), "de": words("Deutsch|Englisch|Französisch"),
    "fr": words("Français|Anglais|Allemand"), "es": words("Español|Inglés|Francés"), "it": words("Italiano|Inglese"),
    "pt": words("Português|Inglês"), "nl": words("Nederlands|Engels|Niet gedefinieerd"), "ja": words("日本語|英語"),
}


def gen_language(c: ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(3)
    if style == 0:
        return enum_column(c, n, _LANG_NAMES.get(c.lang, _LANG_NAMES["en"]), p_same=0.8)
    if style == 1:
        return enum_column(c, n, words("en|de|fr|es|it|pt|nl|ja|ar"), p_same=0.8)
    return enum_column(c, n, words("en-US|en-GB|pt-BR|de-DE|fr-FR|es-ES"), p_same=0.6)


def gen_book_format(c: ValueContext, n: int) -> list[str]:
    pool = {"es": words("Tapa blanda|Tapa dura|Rústica|eBook"), "de": words("Taschenbuch|Gebundene Ausgabe|E-Book"),
            "fr": words("Broché|Relié|Poche|eBook")}.get(c.lang) if c.rng.random() < 0.5 else None
    pool = pool or words("Hardcover|Paperback|ebook|Ebook|PDF|Kindle Edition|Audiobook|EBook|Mass Market Paperback")
    if c.rng.random() < 0.2:
        return enum_column(c, n, schema_url(c, words("Hardcover|Paperback|EBook|AudiobookFormat")))
    return enum_column(c, n, pool, p_same=0.5)


def gen_availability(c: ValueContext, n: int) -> list[str]:
    if c.rng.random() < 0.15:
        return enum_column(c, n, words("Delivery usually in 2-6 working days.|Usually ships in 24 hours|Auf Lager|En stock|Disponible"))
    return enum_column(c, n, schema_url(c, words("InStock|InStock|InStock|OutOfStock|PreOrder|OnlineOnly|LimitedAvailability")), 0.7)


def gen_condition(c: ValueContext, n: int) -> list[str]:
    if c.rng.random() < 0.1:
        return enum_column(c, n, words("New|Used|Neu|Nuovo"))
    return enum_column(c, n, schema_url(c, words("NewCondition|NewCondition|UsedCondition|RefurbishedCondition|DamagedCondition")), 0.8)


def gen_attendance(c: ValueContext, n: int) -> list[str]:
    return enum_column(c, n, schema_url(c, words("OfflineEventAttendanceMode|OnlineEventAttendanceMode|MixedEventAttendanceMode")), 0.8)


def gen_event_status(c: ValueContext, n: int) -> list[str]:
    return enum_column(c, n, schema_url(c, words("EventScheduled|EventScheduled|EventScheduled|EventCancelled|EventPostponed|EventMovedOnline|EventRescheduled")), 0.8)


def gen_delivery(c: ValueContext, n: int) -> list[str]:
    modes = words("DeliveryModeFreight|DeliveryModeOwnFleet|DeliveryModeMail|DeliveryModePickUp|DHL|UPS|FederalExpress")
    pre = c.rng.choice(("http://purl.org/goodrelations/v1#", "http://purl.org/goodrelations/v1#", ""))
    k = c.rng.choice((1, 1, 2))
    v = " ".join(pre + m for m in c.rng.sample(modes, k))
    return [v if c.rng.random() < 0.85 else pre + c.rng.choice(modes) for _ in range(n)]


def gen_diet(c: ValueContext, n: int) -> list[str]:
    diets = words("GlutenFreeDiet|VeganDiet|VegetarianDiet|LowLactoseDiet|LowCalorieDiet|DiabeticDiet|LowFatDiet|HalalDiet|KosherDiet")
    pre = c.rng.choice(("", "", "http://schema.org/", "https://schema.org/"))
    sep = c.rng.choice((" ", ", "))
    return many(n, lambda: sep.join(pre + d for d in c.rng.sample(diets, c.rng.choice((1, 1, 2)))))


def gen_rating(c: ValueContext, n: int) -> list[str]:
    pool = words("R|PG|PG-13|G|NC-17|TV-14|TV-MA|TV-PG|Not Rated|Unrated|N/A|M|PG-V|R 16")
    if c.locale in ("de_DE",):
        pool = words("FSK 12|FSK 16|FSK 6|FSK 18|FSK 0")
    elif c.locale in ("en_GB", "en_AU"):
        pool = words("12A|15|18|PG|U|M|MA15+")
    return many(n, lambda: c.rng.choice(pool))


def gen_payment(c: ValueContext, n: int) -> list[str]:
    pools = {
        "en": words("Visa|MasterCard|American Express|Cash|Diners Club|Discover|ATM|JCB|PayPal|Bank transfer"),
        "de": words("Bar|EC-Karte|Visa|Mastercard|Überweisung|PayPal"), "it": words("Contanti|Bonifico|Carta di credito|Visa"),
        "fr": words("Espèces|Carte bancaire|Chèques vacances|Visa|Virement"), "es": words("Efectivo|Tarjeta de crédito|Visa|Transferencia"),
    }
    pool = pools.get(c.lang, pools["en"]) if c.rng.random() < 0.5 else pools["en"]
    sep = c.rng.choice((", ", " ", ", "))
    up = c.rng.random() < 0.15
    v = sep.join(c.rng.sample(pool, c.rng.randint(1, 4)))
    v = v.upper() if up else v
    return [v if c.rng.random() < 0.8 else sep.join(c.rng.sample(pool, 2)) for _ in range(n)]


def gen_features(c: ValueContext, n: int) -> list[str]:
    pools = {
        "en": words("Free WiFi|Fitness room|Indoor pool|Outdoor pool|Elevator|Sauna|Meeting room(s)|Restaurant|Bar|"
                 "Business center|Free parking|Pet friendly|Air conditioning|Minibar|Laundry service|Spa"),
        "es": words("Se aceptan mascotas|Piscina exterior|Salas de reuniones|Wifi|Ascensor|Gimnasio|Terraza"),
        "de": words("Kostenloses WLAN|Sauna|Parkplatz|Haustiere erlaubt|Fitnessraum|Aufzug"),
        "fr": words("Wifi gratuit|Piscine|Parking|Animaux acceptés|Ascenseur|Climatisation"),
    }
    pool = pools.get(c.lang, pools["en"]) if c.rng.random() < 0.5 else pools["en"]
    sep = c.rng.choice((" ", ", "))
    return many(n, lambda: sep.join(c.rng.sample(pool, c.rng.randint(2, 6))))


def gen_category_code(c: ValueContext, n: int) -> list[str]:
    jobs = words("Retail Salespersons 41-2031.00|Nursing Assistants 31-1014.00|Fitness Trainers and Aerobics "
              "Instructors 39-9031.00|Licensed Practical Nurses 29-2061.00|Software Developers 15-1252.00|"
              "Heavy Truck Drivers 53-3032.00|Operations|Construction|Sales|Education and Research")
    return enum_column(c, n, jobs, p_same=0.5)


def gen_credential(c: ValueContext, n: int) -> list[str]:
    if c.rng.random() < 0.25:  # free-text requirement lists, as many job boards export them
        items = words("High School Diploma|Degree holder in Accounting or equivalent|DVM or equivalent|"
                      "Bachelor's degree in Computer Science|Valid driver's license|CPR certification|"
                      "Degree/Diploma in Marketing|Master's degree preferred|DEP in Mechanics")
        bullet = c.rng.choice(("\u2022 ", "* ", "- "))
        return many(n, lambda: " ".join(bullet + x for x in c.rng.sample(items, c.rng.randint(1, 3))))
    pool = words("Masters|Doctorate|4 Year Degree|Bachelor's Degree|High School Diploma|Not Specified|"
                 "Graduation|UNAVAILABLE|Associate Degree|Diploma|CPA|Professional Certificate|High School|"
                 "DVM or equivalent|Haupt / -Realschulabschluss|Abitur|Licence|Baccalauréat|Título universitario")
    return enum_column(c, n, pool, p_same=0.4)


def gen_experience(c: ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(3)
    return many(n, lambda: (f"At least {c.rng.randint(1, 8)} years experience.",
                             f"{c.rng.randint(1, 5)} to {c.rng.randint(6, 12)} years experience.",
                             c.rng.choice(("2 yrs", "6 months", "Freshers can apply", "No experience required.",
                                           "Class 1 driver's license", "1+ years")))[style])


def gen_work_hours(c: ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(4)
    return many(n, lambda: (f"{c.rng.choice((8, 9, 10))}:00 AM - {c.rng.choice((5, 6))}:30 PM(day shift)",
                             f"{c.rng.choice((35, 37.5, 40))} hours per week", f"Mon - Fri: {c.rng.choice((8, 9))}:00 to 1{c.rng.choice((7, 8))}:00",
                             c.rng.choice(("Full-time", "Part-time", "UNAVAILABLE", "Flexible", "Shift work")))[style])


_CATEGORIES = words("Hair Accessories|Eyeshadow|Lipstick|Lip Liners|Shorts|Pants|Leotards & Unitards|Scuba Gear|"
                 "Round Paintbrushes|Protractors|Christmas|Valentine's Day|Kitchen|Garden|Toys|Electronics|"
                 "Books|Fiction|Shoes|Dog Collars|Fitness|Home Decor|Jewelry|Bakery|Spices")


def gen_category(c: ValueContext, n: int) -> list[str]:
    if c.rng.random() < 0.2:  # the Event pages in SOTAB label their "primary" category slot
        return many(n, lambda: " ".join(["primary"] * c.rng.choice((1, 1, 1, 3))))
    return many(n, lambda: c.rng.choice(_CATEGORIES))


# --- identifiers and codes ---------------------------------------------------------------------
def gen_identifier(c: ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(7)

    def isbn() -> str:
        return c.fake.isbn13()

    one = (isbn, lambda: isbn().replace("-", ""),
           lambda: f"{float(isbn().replace('-', '')):.5e}",  # spreadsheet-mangled ISBNs, as in SOTAB
           c.fake.ean13, lambda: f"ISBN: {isbn()}", c.fake.isbn10, lambda: f"{c.fake.isbn10()} (pbk.)")[style]
    return many(n, one)


def gen_product_model(c: ValueContext, n: int) -> list[str]:
    rng = c.rng
    style = rng.randrange(6)
    pre = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXZ") for _ in range(rng.randint(1, 4)))
    things = words("Leather Leash|Dog Collar|Fur Saver|Bottle|Coupler|Muzzle|Filter|Wheel|Cartridge")
    one = (lambda: str(rng.randint(1000, 9999)),
           lambda: f"{pre}{rng.randint(10, 9999)}{rng.choice(('', '-', '/'))}{rng.choice(('', 'A', 'TW', 'PES', 'B'))}",
           lambda: f"{pre}-{rng.randint(100, 9999)}",
           lambda: f"{pre[:1]}{rng.randint(1, 999)}#{rng.randint(1000, 1200)} {rng.choice(T.ADJ)} {rng.choice(things)}",
           lambda: f"{rng.choice((4, 8, 16, 32))} oz{rng.choice(('', ' Bottle', '.'))}",
           lambda: f"{pre}{rng.randint(1, 9)} {pre}{rng.randint(1000, 9999)}{rng.choice(('', '-01'))}")[style]
    return many(n, one)


def gen_youtube_id(c: ValueContext, n: int) -> list[str]:
    alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return many(n, lambda: "".join(c.rng.choice(alpha) for _ in range(11)))


# --- numbers and quantities -----------------------------------------------------------------------
def gen_number(c: ValueContext, n: int) -> list[str]:
    # SOTAB's Number columns are mostly rating values, counts, page numbers and years-as-floats
    style = c.rng.randrange(6)
    return many(n, lambda: (str(c.rng.choice((1, 1, 4, 5, 5, 10, 0))), f"{c.rng.uniform(1, 5):.1f}",
                             str(c.rng.randint(50, 900)), f"{c.rng.uniform(0, 10):.1f}",
                             f"{c.rng.uniform(3, 5):.2f}", f"{c.rng.randint(1990, 2020)}.0")[style])


def gen_quantitative(c: ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(3)
    unit = c.rng.choice(("servings", "Servings", "cookies", "Pancakes", "Biscuits"))
    return many(n, lambda: (str(c.rng.choice((1, 1, 2, 5, 25))), f"{c.rng.randint(2, 24)} {unit}",
                             str(c.rng.randint(1, 200)))[style])


def gen_energy(c: ValueContext, n: int) -> list[str]:
    unit = c.rng.choice(("", " calories", " kcal", " Calories", " cal"))
    return many(n, lambda: f"{c.rng.randint(60, 700)}{unit}")


def gen_mass(c: ValueContext, n: int) -> list[str]:
    nut = c.rng.choice(("", "", " sugar", " fat", " carbohydrates", " protein", " sodium", " fiber"))
    long_unit = c.rng.random() < 0.4
    dec = c.rng.random() < 0.4
    return many(n, lambda: (f"{c.rng.uniform(0, 60):.1f}" if dec else str(c.rng.randint(0, 60)))
                 + (" grams" if long_unit else c.rng.choice((" g", "g"))) + nut)


def gen_weight(c: ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(5)
    comma = c.lang in ("de", "fr", "es", "it", "pt", "nl")

    def one() -> str:
        kg = c.rng.randint(45, 110)
        small = c.rng.uniform(0.05, 5)
        s = (f"{kg} kg", f"{round(kg * 2.2)} lbs.", f"{round(kg * 2.2)} lb ({kg} kg)",
             f"{small:.2f} lb", f"{small:.3f} Kg.")[style]
        return s.replace(".", ",", 1) if comma and style >= 3 else s

    return many(n, one)


def gen_distance(c: ValueContext, n: int) -> list[str]:
    # SOTAB's Distance columns are mostly people's heights, in every notation there is
    style = c.rng.randrange(9)

    def one() -> str:
        cm = c.rng.randint(150, 205)
        ft, inch = divmod(round(cm / 2.54), 12)
        return (f"{cm} cm", f"{cm / 100:.2f} m", f"{ft} Feet {inch} Inch", f"{c.rng.randint(1, 40)} km",
                f"{ft}' {inch}\\\" ({cm} cm)", f"{ft}\u2032 {inch}\u2033 ({cm}cm)", f"{ft} ft {inch} in",
                f"{ft}'{inch}", f"{ft}-{inch}")[style]

    return many(n, one)


def gen_unit_code(c: ValueContext, n: int) -> list[str]:
    return enum_column(c, n, words("CMT|KGM|INH|LBR|GRM|MTR|C62|ONZ"), p_same=0.9)


def gen_unit_text(c: ValueContext, n: int) -> list[str]:
    return enum_column(c, n, words("lbs|grams|Kg|kg|cm|inches|CMT|oz|g|pcs"), p_same=0.9)
