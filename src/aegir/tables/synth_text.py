"""Names, titles and free text for the synthetic table generator (see `synth.py`).

The values imitate what SOTAB V2 web tables hold for the name- and description-like Schema.org
labels: short titles (Book/name, Movie/name, Recipe/name, ...) and description/review snippets
of roughly 10-40 words. Everything is built from small hand-written slot vocabularies with a
seeded `random.Random`, never from lorem ipsum: a model trained on these tables must see text
whose *vocabulary* says "recipe" or "hotel" the way real pages do, otherwise the description
labels would be indistinguishable from one another.

All functions take an explicit `rng` (and sometimes a seeded Faker) and touch no global state.
"""

from __future__ import annotations

import random
import re
from typing import Callable, Mapping, Sequence, Union


def words(s: str) -> tuple[str, ...]:
    """Pipe-separated vocabulary (pipes, not spaces, so entries may contain spaces)."""
    return tuple(x.strip() for x in s.split("|") if x.strip())


_SLOT = re.compile(r"\{(\w+)\}")
Slot = Union[Sequence[str], Callable[[], str]]  # a vocabulary to choose from, or a value maker


def fill(template: str, rng: random.Random, slots: Mapping[str, Slot]) -> str:
    """Replace every `{slot}` with an independent random choice (or the result of a callable)."""

    def sub(m: re.Match[str]) -> str:
        v = slots[m.group(1)]
        return v() if callable(v) else rng.choice(v)

    return _SLOT.sub(sub, template)


# --- shared slot vocabularies --------------------------------------------------------------
ADJ = words("Silent|Hidden|Last|Lost|Golden|Broken|Secret|Dark|Little|Great|Wild|Midnight|Forgotten|"
         "Crimson|Endless|Quiet|Brave|Burning|Frozen|Invisible|Sweet|Bitter|Perfect|Final|Eternal|"
         "Savage|Gentle|Restless|Scarlet|Hollow|Wicked|Lonely|Shining|Stolen|Distant|Iron")
NOUN = words("Garden|River|House|Kingdom|Promise|Shadow|Road|Winter|Summer|Empire|Island|Letter|"
          "Daughter|Heart|Storm|Mirror|Forest|City|Journey|Bridge|Crown|Voice|Dream|Witness|Ocean|"
          "Key|Mountain|Game|War|Night|Harbor|Orchard|Lighthouse|Secret|Fire|Sky|Tide|Valley|Queen")
TOPIC = words("Python Programming|Organic Chemistry|Microeconomics|Project Management|Digital "
           "Photography|Yoga|Watercolor Painting|Machine Learning|Spanish Grammar|World History|"
           "Human Anatomy|Financial Accounting|Gardening|Bread Baking|Statistics|Leadership|"
           "Marketing|Calculus|Nutrition|Mindfulness|Operating Systems|Criminal Law|Astronomy|"
           "Bird Watching|Jazz Piano|Public Speaking|Beekeeping|Data Science|Knitting|Chess")
PLACE_WORD = words("Paris|Berlin|Tokyo|Rome|Lisbon|Vienna|Chicago|Sydney|Havana|Cairo|Dublin|"
                "Brooklyn|Kyoto|Madrid|Prague|Oslo|Bombay|Texas|Montana|Provence|Tuscany|Bali")
SERIES = words("Chronicles of the North|The Riverbend Mysteries|Dragon Academy|Harbor Lights|"
            "The Kingdom Saga|Detective Maren|Star Rangers|Blackwood Manor|Hearts of Texas")
LOCAL_TITLE = {
    "de": words("Der stille Garten|Das verlorene Haus|Die letzte Reise|Im Schatten des Waldes|"
             "Das Geheimnis der Insel|Kochen für Anfänger|Die Tochter des Kapitäns|Nachtzug nach Lissabon|"
             "Grundlagen der Statistik|Der Winter in Wien|Die Erben des Sturms"),
    "fr": words("Le jardin secret|La maison perdue|Le dernier voyage|L'ombre de la forêt|Les enfants "
             "du silence|Cuisine facile|La fille du capitaine|Une saison à Paris|Petit traité de "
             "statistique|Le roi des montagnes|La mer et les étoiles"),
    "es": words("El jardín secreto|La casa perdida|El último viaje|La sombra del bosque|Cocina fácil|"
             "La hija del capitán|Cien noches en Madrid|El secreto de la isla|Historia de España|"
             "La ciudad de los sueños"),
    "it": words("Il giardino segreto|La casa perduta|L'ultimo viaggio|L'ombra del bosco|Cucina facile|"
             "La figlia del capitano|Un'estate a Roma|Il segreto dell'isola|Storia d'Italia"),
    "pt": words("O jardim secreto|A casa perdida|A última viagem|A sombra da floresta|Cozinha fácil|"
             "A filha do capitão|Um verão em Lisboa|O segredo da ilha|Viva, Ame, Lidere"),
    "nl": words("De stille tuin|Het verloren huis|De laatste reis|In de schaduw van het bos|Koken voor "
             "beginners|De dochter van de kapitein"),
    "ja": words("静かな庭|失われた家|最後の旅|森の影|はじめての料理|船長の娘|東京の夏|島の秘密"),
}


def lang_of(locale: str) -> str:
    return locale.split("_")[0]


def book_title(rng: random.Random, locale: str, person: Callable[[], str]) -> str:
    lang = lang_of(locale)
    if lang in LOCAL_TITLE and rng.random() < 0.55:
        return rng.choice(LOCAL_TITLE[lang])
    tpl = rng.choice((
        "The {adj} {noun}", "{adj} {noun}", "The {noun} of {place}", "{topic} for Beginners",
        "Introduction to {topic}", "The Complete Guide to {topic}", "{topic}: A Practical Approach",
        "The {adj} {noun} ({series} Book {n})", "{person}'s {noun}", "A {noun} for {first}",
        "{adj} {noun}: A Novel", "Schaum's Outline of {topic}", "{series}, Vol. {n}",
        "Issue {n} {year}", "The {noun} and the {noun}", "{topic} ({edition} Edition)",
    ))
    return fill(tpl, rng, {
        "adj": ADJ, "noun": NOUN, "place": PLACE_WORD, "topic": TOPIC, "series": SERIES,
        "n": lambda: str(rng.randint(1, 12)), "year": lambda: str(rng.randint(1995, 2021)),
        "person": lambda: person().split()[-1], "first": lambda: person().split()[0],
        "edition": words("2nd|3rd|4th|Revised|Illustrated|Anniversary"),
    })


MOVIE_EXTRA = words("Returns|Rising|Reloaded|Begins|Forever|Unleashed|Redemption|Origins")


def movie_title(rng: random.Random, locale: str) -> str:
    lang = lang_of(locale)
    if lang in LOCAL_TITLE and rng.random() < 0.3:
        t = rng.choice(LOCAL_TITLE[lang])
    else:
        t = fill(rng.choice((
            "The {adj} {noun}", "{noun}", "{adj} {noun}", "{noun} {n}", "{noun}: {adj} {noun}",
            "The {noun} {extra}", "{place} {noun}", "Escape from {place}", "Return to {noun} {noun}",
            "{noun} of the {adj} {noun}", "{noun}s", "{first} and the {noun}", "Kings of {place}",
            "Behind the {noun}: Escape to {place}", "{adj} Little {noun}s", "{noun} {num}",
        )), rng, {"adj": ADJ, "noun": NOUN, "n": lambda: str(rng.randint(2, 4)),
                  "extra": MOVIE_EXTRA, "place": PLACE_WORD,
                  "first": words("Harry|Emma|Jumanji|Mulan|Onward|Coriolanus|Dolphin|Sniper|Emperor"),
                  "num": lambda: str(rng.choice((2, 3, 1917, 2067, 300)))})
    if rng.random() < 0.25:  # many movie sites append the release year
        t += f" ({rng.randint(1970, 2021)})"
    if rng.random() < 0.08:  # streaming-site boilerplate seen in SOTAB Movie tables
        t += rng.choice((" 123Movies Online Free", " Stream Online Free - 123 Movies", " Full Movie"))
    return t


TV_SERIES = words("Hannibal|Outlander|Rick and Morty|Ink Master|All American|Narcos: Mexico|The Unicorn|"
               "Ballers|Power|Beat Bobby Flay|Bluestone 42|Days of Our Lives|Murdoch Mysteries|"
               "Riverdale|grown-ish|Scream Queens|Malcolm in the Middle|The Crown|Dark|Money Heist|"
               "Vikings|Peaky Blinders|The Office|Grey's Anatomy|Chicago Fire|Doctor Who|Bones|"
               "Suits|Lucifer|The Expanse|Fargo|Ozark|Shameless|Better Call Saul|Sherlock")

DISH = words("Chicken Wings|Burgers|Salmon|Lentil Soup|Banana Bread|Pancakes|Granola Bars|Chili|"
          "Tacos|Risotto|Lasagna|Brownies|Cheesecake|Stir Fry|Curry|Muffins|Meatballs|Quiche|"
          "Enchiladas|Smoothie|Pad Thai|Fried Rice|Pot Roast|Cookies|Scones|Gnocchi|Dumplings")
FLAVOR = words("Honey Sriracha|Lemon Garlic|Creamy|Easy|Vegan|Gluten-Free|Slow Cooker|Air Fryer|"
            "One-Pot|Spicy|Smoky|Rosemary Thyme|Maple Pecan|Chocolate Chip|Healthy|Homemade|"
            "Instant Pot|Keto|Sheet Pan|Crispy|Coconut|Peanut Butter|Pumpkin Spice")
COCKTAIL = words("Lemon Drop|California Mule|Moscow Mule|Negroni|Aperol Spritz|Old Fashioned|Mojito|"
              "Paloma|Whiskey Sour|Espresso Martini|Dark and Stormy|Tom Collins")


def recipe_name(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.1:
        return rng.choice(COCKTAIL)
    name = fill(rng.choice(("{flavor} {dish}", "The Best {flavor} {dish}", "{flavor} {dish} with {side}",
                            "Easy {dish}", "{flavor} {dish} ({method})")), rng,
                {"flavor": FLAVOR, "dish": DISH, "side": words("Spinach|Mushrooms|Feta|Rice|Avocado|Herbs"),
                 "method": words("Air Fryer|Instant Pot|No Bake|30 Minutes|Freezer Friendly")})
    return name.upper() if r > 0.93 else name


PRODUCT_THING = words("Spin Bike|Treadmill|Beanie|Hoodie|Sneaker|Dog Collar|Leather Leash|Coffee Mug|"
                   "Casserole Dish|Shower Chair|Battery Charger|Air Fryer|Yoga Mat|Backpack|Desk Lamp|"
                   "Bluetooth Speaker|Phone Case|Water Bottle|Face Serum|Lipstick|Paintbrush Set|"
                   "Wall Tile|Throw Pillow|Headphones|Kitchen Scale|Garden Hose|Flywheel|Control Valve")
PRODUCT_BRAND = words("YOSUDA|Proform|UMAY|Bobby|Drive Medical|K&K Keramik|NutriChef|BISSELL|JBL|Sony|"
                   "Philips|Bosch|Makita|Lil Nood|Gigacer|CIELO|Anker|Logitech|Tefal|Nike|Adidas|"
                   "Innovative Products|Wall & Deco|Tornado|Kärcher|Samsung|Apple|Braun|OXO")


def product_name(rng: random.Random) -> str:
    return fill(rng.choice((
        "{brand} {thing}", "{brand} {thing} {model}", "{color} {thing}", "{thing} - {color}",
        "{brand} {adj2} {thing}", "{thing} Size {size}", "{brand}; {thing}", "{model}: {thing}",
        "{color} {mat} {thing} - {size}mm", "{adj2} {thing} ({qty} Pack)", "{thing} {size} oz",
        "{mat} {thing} with {extra}", "{model}#{size} {adj2} {mat} {thing}",
    )), rng, {
        "mat": words("Leather|Cotton|Stainless Steel|Ceramic|Bamboo|Silicone|Wool|Oak|Nylon"),
        "qty": words("2|3|4|6|10|12"), "extra": words("Chrome Studs|Gift Box|USB-C|Lid|Handle|Zipper"),
        "brand": PRODUCT_BRAND, "thing": PRODUCT_THING,
        "color": words("Navy|Black|Silver|Pink|Stealth Black|Dark Grey|Red|Olive|White|Rose Gold"),
        "adj2": words("Premium|Classic|Portable|Compact|Heavy Duty|Professional|Deluxe|Wireless"),
        "model": lambda: f"{rng.choice('ABCDEFGHKLMNPRSTX')}{rng.randint(10, 999)}",
        "size": lambda: str(rng.randint(5, 46)),
    })


# --- descriptions, reviews, steps ------------------------------------------------------------
_DESC: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "Book": (words(
        "Explore the {adj} world of {topic} in this {kind} by an award-winning author.|"
        "A {adj2} {kind} about a young {who} who must {goal} before it is too late.|"
        "This {edition} edition covers {topic} with clear examples, exercises and review questions.|"
        "Since she was fourteen, {who2} has dreamed of {goal}. Now she has one summer to do it.|"
        "From the bestselling author of {series} comes a {adj2} new {kind} of love and loss.|"
        "Useful reference that gives brief sketches of {topic} for students and teachers alike.|"
        "In this {kind}, {who2} tells the story of a family torn apart by war and secrets.|"
        "{topic_cap}: everything you need to know, from the basics to advanced techniques.|"
        "Learn about {topic} with more than {n} full-colour illustrations and step-by-step projects.|"
        "Focus on {topic}; {adj} {noun}s and the people who made them.|"
        "This historic book may have numerous typos and missing text.|"
        "The {adj} {noun} is the {ordinal} book in the {series} series."),
        {"kind": words("novel|memoir|guide|collection of stories|textbook|thriller|handbook|picture book"),
         "adj2": words("heartwarming|gripping|moving|hilarious|haunting|timely|beautifully written"),
         "who": words("woman|boy|detective|soldier|princess|teacher|widow|scientist"),
         "who2": words("Sophie James|Jean Sanders|Josephine Wilder|the narrator|Anna|Tom Becker"),
         "goal": words("save her family|find the truth|win back his home|escape the city|solve the murder"),
         "edition": words("third|second|revised|updated|new"),
         "topic_cap": TOPIC, "n": words("50|100|200|300"), "ordinal": words("first|second|third|final")}),
    "Movie": (words(
        "{star} and {star} star in this {adj2} {genre} about {plot}.|"
        "A {adj2} {genre} about a {who} whose {life} is turned upside down when {event}.|"
        "While on a family trip, a {who} discovers {plot}.|"
        "Thirty years ago, {event}. Now a {who} must {goal}.|"
        "Watch {title} online. A {who} and his daughter disappear into the wilderness.|"
        "Watch {adj} {noun} ({year}) Full Movie Online free in HD. {plot_cap}.|"
        "Movie was released on {year}-0{m}-1{m}, the IMDB rating is {r} and lasts {mins} minutes.|"
        "The story of a {who} who {goal2}.|During the {era}, a {who} must {goal}.|"
        "When {person} sets sail with a group of friends, she cannot shake the feeling that {plot}.|"
        "Five friends reunite in an attempt to {goal}."),
        {"star": words("Emma Stone|Steve Carell|David Oyelowo|Rosamund Pike|Tom Hardy|Viola Davis|Idris Elba|Zoe Kazan"),
         "adj2": words("heartfelt|thrilling|darkly comic|action-packed|chilling|inspiring|crowd-pleasing"),
         "genre": words("drama|comedy|thriller|adventure|horror film|documentary|romance"),
         "who": words("milquetoast accountant|retired cop|young autistic woman|teenage hacker|small-town mayor"),
         "life": words("quiet life|marriage|career|perfect plan"),
         "event": words("aliens arrive on Earth|a stranger knocks on the door|his father is murdered|the storm hits"),
         "plot": words("a conspiracy at the heart of the city|a secret that could change everything|the power of friendship"),
         "goal": words("stop the invasion|clear his name|find her brother|survive the night"),
         "title": words("now|in HD|free"), "year": words("2001|2010|2016|2019|2020"), "m": words("1|2|3|4|5|6|7|8|9"),
         "r": words("6,4|7.1|5.8|8.2"), "mins": words("79|94|101|118|132"),
         "plot_cap": words("A behind the scenes look at the team|A family is torn apart|Nothing is what it seems"),
         "goal2": words("loses everything|finds love in Paris|is transported out of his body|joins a gang of bikers"),
         "era": words("Roman Empire|Cold War|Great Depression|last ice age"),
         "person": words("Jess|Anna|Mary Jane|Natalie|Hannah")}),
    "Recipe": (words(
        "{adj2} {dish} that is ready in {n} minutes and perfect for {occasion}!|"
        "Quick and easy, no bake, homemade {dish} made with {ing} and {ing}.|"
        "This {dish} is a great alternative for {occasion}. Made with {ing}, it is {adj2}.|"
        "A twist on classic {dish} using {ing} and a splash of {ing}.|"
        "All my years living abroad, this {dish} is still my favourite {occasion} treat.|"
        "{flavor} {dish} – an easy, healthy, and nutritious recipe for {occasion}.|"
        "Serve this zesty {dish} with mixed greens, sliced avocado or green beans.|"
        "This {dish} is great for any party and looks especially festive on the table.|"
        "Makes around {n} servings. Keeps in the fridge for {n} days.|"
        "There is nothing like a juicy {dish}, properly cooked and properly seasoned.|"
        "I recently read that {dish} was the most frequently made recipe of the year.|"
        "My easy and delicious {dish} recipe uses just {n} ingredients."),
        {"adj2": words("Delicious|Healthy|Creamy|Crispy|Comforting|Light and bubbly|Kid-friendly"),
         "dish": tuple(d.lower() for d in DISH),
         "ing": words("rice flakes|soy milk|peanut butter|fresh basil|coconut milk|goat cheese|walnuts|"
                   "balsamic vinegar|buckwheat|white chocolate|garlic|lime juice|maple syrup"),
         "occasion": words("breakfast|a weeknight dinner|dessert|the holidays|meal prep|a party|brunch"),
         "n": words("10|15|20|30|45|4|6"), "flavor": FLAVOR}),
    "Hotel": (words(
        "Located in the heart of {city}, the hotel offers {amen} and {amen}.|"
        "Book {hotel} in {city}. Save talking direct with online management.|"
        "The hotel is situated {dist} from the {poi}. All rooms feature {amen}.|"
        "A {floor} apartment offering panoramic views of {poi}, close to the harbour.|"
        "Only steps away from {poi}, our {stars}-star hotel features {amen} and a rooftop bar.|"
        "{lodge} in the heart of {city}. {amen_cap}, shuttle. Rooms in main lodge and cabins.|"
        "Dating back to the {decade}, the {hotel} is located in downtown {city}.|"
        "The {hotel} was recently named one of the best hotels in {city}. Check in from {t}.|"
        "A {floor} apartment with {amen}, close to {poi}. Sleeps {b}.|"
        "Remote fly-in lodge located on a private lake. Meals, guided fishing and {amen} included.|"
        "Set in {city}, {dist} from {poi}, the property offers rooms with {amen} and {amen}.|"
        "There is a big range of hotels and resorts in {city}. Compare prices and book online.|"
        "{hotel} is a charming {stars} star hotel located close to {poi}.|"
        "Family hotel with pleasant tearooms. First opened in the {decade}.|"
        "With its lovely outdoor swimming pool and {amen}, the hotel is ideal for families.|"
        "Find your perfect romantic hideaway in {city}, halfway between {poi} and the {poi}."),
        {"amen": words("free WiFi|an outdoor pool|a fitness centre|air conditioning|a spa|free parking|a restaurant"),
         "dist": words("80 m|5 minutes|2 km|a short walk|10 minutes"),
         "poi": words("ski lift|beach|old town|airport|train station|Union Square|the bay|city centre"),
         "floor": words("first floor|ground floor|top floor|three-storey"),
         "stars": words("3|4|5"), "hotel": words("Pavilion Hotel|Tabulam Hotel|Harbour Lodge|Grand Palace Hotel"),
         "city": PLACE_WORD, "lodge": words("Wilderness lodge|Boutique hotel|Family-run guesthouse|Resort"),
         "amen_cap": words("Free wireless|Free breakfast|Heated pool|Free parking"),
         "decade": words("1920s|1890s|1960s|19th century"), "t": words("14:00|15:00|3 pm"), "b": words("2|4|6")}),
    "Product": (words(
        "The {thing} features {feat} and {feat}. {care}.|"
        "Product Description: constructed of {mat}, this {thing} is built to last.|"
        "{mat_cap}. Made in {origin}. {care}.|"
        "A compact model recommended for smaller groups. Perfect for {use}.|"
        "Signature {thing} with {feat}. Ideal for {use}.|"
        "Features: - {feat_cap} - {feat_cap} - {mat_cap} Standard.|"
        "This package features our {n} most popular {thing}s in the {size} size.|"
        "Custom {thing} design is easy and inexpensive. Design yours today for friends or family.|"
        "Beds:{b} Baths:{b} Sq. Feet:{sq}|The perfect wardrobe staple. Our {color} {thing} looks great with {thing}s.|"
        "Soft and robust {thing} with {feat}. Pack size: {b}."),
        {"thing": tuple(p.lower() for p in PRODUCT_THING),
         "feat": words("a no-slip grip|cushion padding|a moisture-wicking fabric|a rechargeable battery|"
                    "adjustable straps|a stainless steel body|LED display"),
         "mat": words("100% cotton|genuine leather|recycled plastic|solid oak|aluminium|100% gabardine"),
         "mat_cap": words("100% gabardine|100% wood (ash tree)|Genuine leather|Organic cotton"),
         "origin": words("Europe|Italy|Germany|the USA|Portugal|Japan"),
         "care": words("Hand wash only|Machine washable|Wipe clean|Dishwasher safe"),
         "use": words("home workouts|travel|everyday use|the kitchen|outdoor adventures"),
         "feat_cap": words("Two-Piece Forged Aluminum|Full Polish Finish|Anti-Slip Sole|Water Resistant|Adjustable Strap"),
         "n": words("three|two|five"), "size": words("4 oz|24 oz|16 oz|1 kg|500 ml"), "b": words("1|2|3|4"),
         "sq": words("695|751|809|1200|1450"), "color": words("black|navy|white|grey|olive")}),
    "Event": (words(
        "Join us for {an_event} featuring {who}. {extra}|"
        "We meet at the {spot} around {time} and are ready to go by {time}.|"
        "&lt;p&gt;This class combines {activity} and {activity}. {extra}&lt;/p&gt;|"
        "Enjoy a brief presentation, refreshments, and relaxed networking. {extra}|"
        "{club} meeting to be held at {spot}. {extra}"),
        {"an_event": words("an awesome night of live music|our monthly book club|a free workshop|a family fun day"),
         "who": words("local talent|guest speakers|the city orchestra|award-winning chefs"),
         "extra": words("All welcome.|Registration required.|Free entry.|Tickets at the door.|Bring a friend!"),
         "spot": words("back parking lot|community hall|Alexandra Park|main library|town square"),
         "time": words("5:45|6:00|7:30|9:00"),
         "activity": words("traditional calisthenics|Tai Chi|Qi Gong|weight training|yoga|stretching"),
         "club": words("Auckland Trotting Club|Rotary Club|Chamber of Commerce|Garden Society")}),
    "JobPosting": (words(
        "We are currently recruiting a {role} to join our {team} team in {city}.|"
        "The {role} is responsible for {duty} and {duty}. {req}|"
        "About the Role: we are looking for a {role} to {duty}. {req}|"
        "&lt;p&gt;Job Description&lt;BR&gt;Role: {role}&lt;BR&gt;Location: {city}&lt;BR&gt;|"
        "Looking for individuals to train into {role}s. No experience necessary. {req}"),
        {"role": words("Technical Account Handler|Process Operator|Clinic Nurse|Software Engineer|"
                    "Sales Representative|Machine Operator|Account Executive|Warehouse Associate"),
         "team": words("growing|sales|engineering|clinical|operations|customer success"),
         "duty": words("receiving and storing materials|managing key accounts|supporting patients|"
                    "writing clean code|meeting sales targets|maintaining equipment"),
         "req": words("Must possess a valid driver's license.|Competitive salary and benefits.|"
                   "Full training provided.|Apply today!|Shift work required."),
         "city": PLACE_WORD}),
}
DESC_DOMAINS = tuple(_DESC)


def description(domain: str, rng: random.Random, n_sent: int = 1) -> str:
    templates, slots = _DESC[domain]
    all_slots = {"adj": ADJ, "noun": NOUN, "topic": TOPIC, "series": SERIES, "dish": DISH, **slots}
    return " ".join(fill(rng.choice(templates), rng, all_slots) for _ in range(n_sent))


_REVIEW = words(
    "I really enjoyed this {thing}. {opinion}|{opinion} Would {rec} it to anyone.|"
    "This is honestly one of the most {adj2} {thing}s I have ever {verb}.|"
    "Great {thing}, great service! {opinion}|"
    "A four-star only because it's not quite as good as the first one. Still {adj2}.|"
    "Have never written a bad review before but {complaint}.|"
    "Very pleasant experience. All was very good. Will come back.|"
    "The author clearly {complaint2}. {opinion}|\u201c{adj2_cap} and unforgettable.\u201d \u2014 {paper}|"
    "I didn't like the {thing} at all. It was {adj2} from start to finish.|"
    "One of the most beautiful {thing}s I have {verb} this year. {opinion}|"
    "\u201cThis collection, expertly edited, is a {adj2} read.\u201d|JUST AWESOME! {opinion}|"
    "I enjoyed this {thing} from the start. {opinion} Highly recommended.|"
    "Very good learning {thing}, it has loads of information which is useful.")
_REVIEW_SLOTS = {
    "thing": words("book|product|place|series|recipe|restaurant|movie|soap"),
    "opinion": words("Loved every page.|The characters felt real.|Five stars!|Not worth the money.|"
                  "The food was excellent.|Arrived quickly and well packaged.|My kids loved it."),
    "rec": words("recommend|gift"), "adj2": words("heartbreaking|useful|delicious|boring|inspiring|overrated"),
    "adj2_cap": words("Gripping|Tender|Brilliant|Moving"), "verb": words("read|bought|tried|watched"),
    "complaint": words("the steak was overcooked|the delivery took three weeks|the ending made no sense"),
    "complaint2": words("did the research|lacks the patience to edit|knows the subject well"),
    "paper": words("The Guardian|Kirkus Reviews|Publishers Weekly|The New York Times"),
}
_REVIEW_LOCAL = {
    "de": words("Sehr gutes Buch, klare Empfehlung!|Schnelle Lieferung, alles bestens.|Leider enttäuschend."),
    "fr": words("Très bon livre, je recommande !|Livraison rapide, produit conforme.|Un peu décevant."),
    "es": words("Muy buen libro, lo recomiendo.|Entrega rápida, todo perfecto.|Un poco decepcionante."),
    "sv": words("Har än så länge bara ätit på terrassen som är öppen på sommaren."),
}


def review(rng: random.Random, locale: str) -> str:
    lang = lang_of(locale)
    if lang in _REVIEW_LOCAL and rng.random() < 0.4:
        return rng.choice(_REVIEW_LOCAL[lang])
    return fill(rng.choice(_REVIEW), rng, _REVIEW_SLOTS)


_STEP = words("Preheat oven to {temp}.|Mix all the {what} ingredients together in a large bowl.|"
           "Add the {ing} and stir until combined.|Whisk together the {ing} and the {ing}.|"
           "Bake for {n} minutes until golden.|Refrigerate for at least {n} minutes.|"
           "Combine ingredients in a mixing glass filled with ice. Shake and strain.|"
           "In the same pan, add the onions and sauté for about {n} mins.|"
           "Transfer the mixture to your blender and puree until smooth.")


def recipe_steps(rng: random.Random) -> str:
    slots = {"temp": words("350° F|180 degrees|200°C|400 degrees Fahrenheit"),
             "what": words("dry|wet|marinade|dressing"), "n": words("5|10|20|30|45"),
             "ing": words("butter|sugar|eggs|flour|garlic|cacao nibs|broth|milk|oats|banana")}
    k = rng.randint(1, 3)
    sep = rng.choice((" ", "; "))
    return sep.join(fill(rng.choice(_STEP), rng, slots) for _ in range(k))


def track_list(rng: random.Random) -> str:
    return " ".join(song_title(rng) for _ in range(rng.randint(3, 6)))


def song_title(rng: random.Random) -> str:
    return fill(rng.choice(("{adj} {noun}", "{noun}", "The {noun} Needs a {noun}", "{noun} Blues",
                            "{adj} {noun} (Live)", "{noun} (Remix)", "What do You Say?", "{noun} ft. {ft}",
                            "Suddenly {adj}", "{adj} Dreams")), rng,
                {"adj": ADJ, "noun": NOUN, "ft": words("KNNess|Lil Joe|MC Ray|Dana")})


def album_title(rng: random.Random) -> str:
    return fill(rng.choice(("{adj} {noun}", "Rhythm and {x}", "Simple Things In Life", "Singles",
                            "The {noun} Sessions", "{noun} (Deluxe Edition)", "Greatest Hits",
                            "Live at the {noun}", "Relax and Sleep: {x} Sounds")), rng,
                {"adj": ADJ, "noun": NOUN, "x": words("Soul|Dance|Ocean|Rain|Blues|Jazz")})
