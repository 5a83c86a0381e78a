"""Fixed vocabularies of the world: TMDB genres with their look and words, occupations, languages.

Genre-specific words feed titles, overviews and self-descriptions, so a text model can learn
which words go with which tastes; the words are invented, never copied from real catalogues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Genre:
    """A TMDB genre and the words the simulator writes about it."""

    tmdb_id: int
    name: str
    prevalence: float
    """Share of movies carrying the genre (before normalisation)."""
    runtime: int
    """Typical runtime in minutes."""
    synonyms: tuple[str, ...]
    """How people name it in free text ('scary movies')."""
    heroes: tuple[str, ...]
    places: tuple[str, ...]
    plots: tuple[str, ...]
    """Verb phrases: 'must stop a ...'."""
    title_words: tuple[str, ...]


# fmt: off
GENRES: Final[tuple[Genre, ...]] = (
    Genre(28, "Action", 0.2, 112,
          ("action movies", "action flicks", "explosions and car chases", "shoot-em-ups"),
          ("ex-commando", "rogue agent", "getaway driver", "bodyguard", "mercenary"),
          ("a besieged skyscraper", "the docks of a port city", "a runaway train", "a desert convoy"),
          ("must fight through an army of hired guns", "races against a ticking bomb", "takes down a smuggling ring"),
          ("fury", "strike", "velocity", "blast", "hunter", "fist", "bullet", "overdrive")),
    Genre(12, "Adventure", 0.12, 118,
          ("adventure movies", "adventures", "treasure hunts", "epic journeys"),
          ("young explorer", "treasure hunter", "ship's captain", "cartographer", "runaway heir"),
          ("an uncharted jungle", "a lost island", "frozen mountain passes", "a sunken city"),
          ("sets out to find a legendary relic", "crosses the wild to bring a map home", "follows a riddle"),
          ("quest", "expedition", "horizon", "compass", "voyage", "lost", "kingdom", "trail")),
    Genre(16, "Animation", 0.06, 92,
          ("animated movies", "cartoons", "anime", "pixar-style films"),
          ("talking fox", "little robot", "brave mouse", "young dragon", "toy soldier"),
          ("a candy-coloured town", "the bottom of the sea", "a toy box", "a kingdom of clouds"),
          ("learns that friendship is the real magic", "must get home before sunrise", "befriends a lonely giant"),
          ("tails", "bubbles", "whiskers", "sprout", "pebble", "buttons", "jellybean", "paws")),
    Genre(35, "Comedy", 0.3, 101,
          ("comedies", "funny movies", "stuff that makes me laugh", "goofy comedies"),
          ("hapless groom", "slacker roommate", "substitute teacher", "wedding planner", "failed comedian"),
          ("a chaotic family reunion", "a small-town diner", "a disastrous road trip", "a cruise ship"),
          ("tries to fake a perfect life", "swaps places with a rival", "must survive one more bad idea"),
          ("blunder", "oops", "party", "mess", "trouble", "dude", "hijinks", "bachelor")),
    Genre(80, "Crime", 0.14, 114,
          ("crime movies", "heist movies", "gangster films", "mob stories"),
          ("crooked cop", "safecracker", "mob accountant", "getaway driver", "con artist"),
          ("the underworld of a rain-soaked city", "a casino floor", "a corrupt precinct", "a bank vault"),
          ("plans one last heist", "turns informant against the family", "launders money for the mob"),
          ("heist", "racket", "score", "vault", "syndicate", "alibi", "ransom", "mob")),
    Genre(99, "Documentary", 0.05, 86,
          ("documentaries", "docs", "true stories", "nature documentaries"),
          ("marine biologist", "climber", "whistleblower", "chef", "archive footage"),
          ("the arctic ice", "a refugee camp", "the world's busiest kitchen", "the deep ocean"),
          ("reveals the untold story behind the headlines", "follows a season at the edge of the world"),
          ("inside", "truth", "untold", "planet", "voices", "record", "witness", "chronicle")),
    Genre(18, "Drama", 0.45, 118,
          ("dramas", "serious movies", "emotional dramas", "character studies"),
          ("grieving widow", "estranged son", "factory worker", "young nurse", "ageing pianist"),
          ("a struggling mill town", "a family farm", "a hospital ward", "a crumbling estate"),
          ("must face the past to hold the family together", "fights for a second chance", "keeps a secret"),
          ("silence", "harbor", "letters", "winter", "inheritance", "season", "reckoning", "grace")),
    Genre(10751, "Family", 0.08, 98,
          ("family movies", "films for the kids", "feel-good family films"),
          ("brave little sister", "family dog", "grandfather", "new kid in town", "single dad"),
          ("a summer camp", "grandma's farm", "a snowed-in cabin", "a neighbourhood bakery"),
          ("saves the holiday for everyone", "learns to stand up to bullies", "finds a home for a stray"),
          ("puppy", "holiday", "backyard", "home", "treehouse", "summer", "lucky", "pals")),
    Genre(14, "Fantasy", 0.08, 120,
          ("fantasy", "fantasy epics", "movies with magic and dragons", "sword and sorcery"),
          ("apprentice wizard", "exiled princess", "half-elf ranger", "dragon rider", "hedge witch"),
          ("an enchanted forest", "a kingdom under a curse", "the realm beyond the mirror", "a tower of mages"),
          ("must break an ancient curse", "wields a forbidden spell", "unites the scattered clans"),
          ("sorcerer", "crown", "dragon", "rune", "spell", "throne", "shadowmoor", "amulet")),
    Genre(36, "History", 0.04, 132,
          ("historical movies", "period pieces", "history films", "biopics"),
          ("queen", "general", "court painter", "resistance printer", "explorer"),
          ("medieval france", "ancient rome", "victorian london", "the court of a dying empire"),
          ("changes the course of a nation", "defies a tyrant", "fights for the crown"),
          ("empire", "dynasty", "revolution", "emperor", "century", "chronicles", "crown", "legacy")),
    Genre(27, "Horror", 0.11, 95,
          ("horror", "scary movies", "slashers", "horror flicks", "ghost stories"),
          ("babysitter", "paranormal investigator", "final girl", "new tenant", "priest"),
          ("a haunted farmhouse", "an abandoned asylum", "a cabin in the woods", "a cursed hotel"),
          ("is stalked by something in the dark", "awakens an evil that should have stayed buried"),
          ("haunting", "bloodline", "hollow", "exorcism", "nightmare", "shriek", "crypt", "possession")),
    Genre(10402, "Music", 0.03, 105,
          ("musicals", "music movies", "concert films", "movies about bands"),
          ("garage band", "jazz singer", "choir teacher", "young violinist", "fading rock star"),
          ("a smoky jazz club", "a battle of the bands", "a conservatory", "a world tour"),
          ("chases one big break", "gets the band back together", "finds a voice"),
          ("rhythm", "encore", "melody", "chorus", "stage", "ballad", "groove", "harmony")),
    Genre(9648, "Mystery", 0.07, 108,
          ("mysteries", "whodunits", "detective stories", "puzzle movies"),
          ("detective", "amateur sleuth", "insurance investigator", "true-crime podcaster", "inspector"),
          ("a remote manor", "a seaside village", "a locked room", "an island hotel"),
          ("unravels a murder nobody else sees", "follows clues in a decades-old disappearance"),
          ("clue", "riddle", "secret", "affair", "puzzle", "vanishing", "whisper", "case")),
    Genre(10749, "Romance", 0.15, 107,
          ("romance", "love stories", "romcoms", "romantic movies"),
          ("florist", "wedding singer", "bookseller", "foreign exchange student", "widower"),
          ("paris in the spring", "a seaside town", "a vineyard", "a snowy christmas village"),
          ("falls for the last person expected", "gets a second chance at first love"),
          ("love", "kiss", "forever", "heart", "sweetheart", "moonlight", "valentine", "darling")),
    Genre(878, "Science Fiction", 0.09, 116,
          ("sci-fi", "science fiction", "space movies", "futuristic stuff"),
          ("starship engineer", "android", "time traveller", "colony doctor", "astronaut"),
          ("a generation ship", "a mars colony", "a dystopian megacity", "an orbital station"),
          ("must stop an AI from rewriting humanity", "discovers a signal from deep space"),
          ("orbit", "quantum", "nebula", "android", "protocol", "starfall", "singularity", "cyborg")),
    Genre(10770, "TV Movie", 0.03, 88,
          ("tv movies", "made-for-tv movies", "hallmark-type movies"),
          ("small-town mayor", "baker", "nanny", "local reporter", "pastor"),
          ("a small town at christmas", "a lakeside inn", "a local newsroom"),
          ("saves the town festival", "finds love during the holidays"),
          ("christmas", "hometown", "inn", "festival", "snowfall", "cottage", "wish", "sweet")),
    Genre(53, "Thriller", 0.2, 110,
          ("thrillers", "suspense movies", "psychological thrillers", "edge-of-your-seat stuff"),
          ("hacker", "witness", "journalist", "kidnapped daughter's father", "double agent"),
          ("a stranded yacht", "a snowbound airport", "a surveillance state", "a locked apartment"),
          ("races to expose a conspiracy", "is framed for a murder", "has one night to survive"),
          ("fracture", "deadline", "paranoia", "cipher", "pursuit", "trap", "blackout", "hostage")),
    Genre(10752, "War", 0.04, 130,
          ("war movies", "war films", "ww2 movies", "military movies"),
          ("platoon medic", "sniper", "fighter pilot", "young conscript", "field nurse"),
          ("the trenches of the western front", "a besieged city", "the beaches of normandy", "a jungle outpost"),
          ("must hold the line until dawn", "carries a message across enemy lines"),
          ("battalion", "frontline", "siege", "platoon", "artillery", "honor", "bastion", "valor")),
    Genre(37, "Western", 0.03, 115,
          ("westerns", "cowboy movies", "spaghetti westerns"),
          ("gunslinger", "sheriff", "bounty hunter", "rancher's widow", "outlaw"),
          ("a dusty frontier town", "the badlands", "a cattle drive", "a railroad camp"),
          ("rides for revenge", "defends a town from a gang of outlaws", "hunts a bounty across the plains"),
          ("outlaw", "canyon", "dust", "revolver", "frontier", "gallows", "stallion", "sundown")),
)
# fmt: on
"""The 19 TMDB genres, in a fixed order (column order of genre matrices)."""

GENRE_NAMES: Final = tuple(g.name for g in GENRES)

COMMON_TITLE_WORDS: Final = (
    "night",
    "city",
    "shadow",
    "last",
    "blue",
    "dark",
    "river",
    "road",
    "fire",
    "glass",
    "silver",
    "iron",
    "storm",
    "dream",
    "summer",
    "winter",
    "midnight",
    "ghost",
    "stranger",
    "sky",
    "ocean",
    "secret",
    "wild",
    "golden",
    "broken",
    "burning",
    "hidden",
    "electric",
    "crimson",
    "quiet",
    "lucky",
    "forgotten",
    "paper",
    "echo",
    "moon",
    "star",
    "island",
    "garden",
    "north",
    "kingdom",
    "mirror",
    "wolf",
    "tiger",
    "angel",
    "devil",
    "heart",
    "stone",
    "rain",
    "diamond",
    "thunder",
    "velvet",
)
"""Words any genre may use in a title."""

NAMES: Final = (
    "jack",
    "maria",
    "sam",
    "eddie",
    "lola",
    "max",
    "frankie",
    "rosa",
    "harry",
    "nina",
    "oscar",
    "ruby",
    "leo",
    "vera",
    "charlie",
    "ada",
    "milo",
    "june",
    "otis",
    "ivy",
    "bruno",
    "stella",
)

OCCUPATIONS: Final = (
    "other or not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
"""MovieLens occupations, as the course's user API reports them."""

LANGUAGES: Final = ("en", "fr", "es", "ja", "ko", "de", "it", "hi", "zh", "sv", "da", "ru", "pt")
LANGUAGE_SHARES: Final = (0.70, 0.05, 0.04, 0.04, 0.03, 0.03, 0.03, 0.03, 0.02, 0.01, 0.01, 0.005, 0.005)
