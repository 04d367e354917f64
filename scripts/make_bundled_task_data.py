"""Build lmtrain's bundled fine-tuning data from gensim's Lee corpus (run once; outputs are committed).

    python scripts/make_bundled_task_data.py

* src/lmtrain/resources/ner/lee_ner.{train,dev}.conll: PROJECT-MADE, SILVER-STANDARD NER data. Lee
  news sentences tagged PER / LOC / ORG (BIO) by the gazetteers and rules below, not by people: a
  demonstration set that runs in seconds, not a benchmark. Documents 0-239 give the training
  sentences, 240-299 the dev sentences (no document is in both).
* src/lmtrain/resources/generation/lee_halves.jsonl: prompt -> completion pairs, the first and the
  second half of Lee sentences.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from lmtrain.data.corpus import bundled_file, split_sentences
from lmtrain.tasks.ner import split_words

OUT = Path(__file__).resolve().parents[1] / "src" / "lmtrain" / "resources"

PER = """Yasser Arafat|Arafat|Osama bin Laden|bin Laden|Laden|Osama|George W Bush|George Bush|Bush|Ariel Sharon|Sharon
|Peter Hollingworth|Hollingworth|Glenn McGrath|McGrath|David Hicks|Hicks|Shaun Pollock|Pollock|Anthony Zinni|Zinni
|Andy Bichel|Bichel|Shane Warne|Warne|Brett Lee|Alexander Downer|Downer|Pervez Musharraf|Musharraf|Jacques Kallis
|Kallis|Neil McKenzie|McKenzie|Ricky Ponting|Ponting|Jason Gillespie|Gillespie|Steve Waugh|Mark Waugh|Waugh|Vaughan
|Richard Reid|Simon Crean|Crean|Suharto|Colin Powell|Powell|Rudolph Giuliani|Giuliani|Justin Langer|Langer
|Matthew Hayden|Hayden|Allan Donald|Hamid Karzai|Karzai|Stuart MacGill|MacGill|Shane Bond|Philip Ruddock|Ruddock
|Tony Lockett|Lockett|Patrick Rafter|Rafter|Monica Seles|Seles|Lleyton Hewitt|Hewitt|Lance Klusener|Klusener
|Mark Boucher|Boucher|Adam Gilchrist|Gilchrist|John Howard|Howard|Daryl Williams|Donald Rumsfeld|Rumsfeld
|Doug Cameron|Gary Kirsten|Kirsten|Robert Hill|Kevin Rudd|Rudd|Martin Kingham|Zacarias Moussaoui|Moussaoui
|Kieren Perkins|Perkins|Peter Costello|Tim Costello|Costello|Sheikh Ahmed Yassin|Yassin|Burhanuddin Rabbani|Rabbani
|George Harrison|Harrison|Claire Richards|Hafiz Mohammed Saeed|Saeed|Nicky Boje|Boje|Claude Henderson|Nantie Haywood
|Gerhard Schroeder|Schroeder|Paul Wolfowitz|Wolfowitz|Terje Roed-Larsen|Bob Hawke|Hawke|Neville Wran|Wran|Peter Blake
|Henry Kissinger|Kissinger|Ed Moses|Liesel Jones|Matt Welsh|Ray Hass|Ian Macfarlane|Macfarlane|Makhaya Ntini|Ntini
|Mohammed Afroz|Afroz|Atal Behari Vajpayee|Vajpayee|Geoff Derrick|David Lording|Gul Agha|Dan Bursch|Yuri Onufrienko
|Peter Balmer|Helena Britt|Sarah Payne|Stephan Friedli|Simon Wiget|Stefan Abegglen|Mohammed Omar|Omar|Dick Cheney
|Cheney|Tony Blair|Blair|Jiang Zemin|Megawati Sukarnoputri|Megawati|Shimon Peres|Peres|Salman Radduyev|Raduyev
|Abdul Aziz Rantissi|Rantissi|Mark Vaile|Vaile|Peter Reith|Reith|Kim Beazley|Beazley|Bob Carr|Carr|Steve Bracks|Bracks
|Peter Beattie|Beattie|John Anderson|Jim Lloyd|Tony Abbott|Abbott|Nick Minchin|Amanda Vanstone|Vanstone
|Brendan Nelson|Nelson|Warren Truss|Truss|Zaheer Abbas""".replace("\n", "")

LOC = """Australia|Afghanistan|United States|US|Sydney|Israel|Pakistan|West Bank|Tora Bora|New South Wales|India
|Melbourne|South Africa|Kandahar|Gaza Strip|Gaza City|Gaza|Kabul|Adelaide|New York|Washington|Queensland|Perth
|Britain|Great Britain|Middle East|Blue Mountains|New Zealand|Jenin|Victoria|Hobart|East Timor|Bonn|Zimbabwe|Ramallah
|Interlaken|South Australia|Western Australia|Tasmania|Nauru|Woomera|Indonesia|Kashmir|Europe|France|Brisbane
|Switzerland|New Delhi|Delhi|Africa|Germany|Nablus|Jerusalem|Haifa|Launceston|America|Japan|Jalalabad|Hume Highway
|Illawarra|Northern Territory|Argentina|Christmas Island|Paris|Islamabad|London|Canberra|Brazil|Jakarta|Hill Top
|Mittagong|Goulburn|Gunning|Cranebrook|Hunter Valley|Hunter|Srinagar|Karachi|Shoalhaven|Miami|Darwin|Iraq|Canada
|Brussels|Indian Ocean|Pennsylvania|Cairns|Mt Gambier|Paktika|Indiana|Palmerston|Hornsby|Liverpool|Corowa|Appin
|Cessnock|Toowoomba|Nepal|Spain|Memphis|Atlanta|Alice Springs|Sutherland|Hawkesbury River|Auckland|Russia|Burakin
|Shellharbour|Franklin River|Eden|Campbelltown|Dagestan|Bass Strait|China|Bethlehem|Buenos Aires|United Kingdom
|Beitunya|Hebron|Belgium|Malaysia|England|Phillip Island|Egypt|Kosovo|Diego Garcia|Singapore|Asia|Port Augusta|Zabul
|Sharana|Khan Yunis|Kentucky|Massachusetts|Fort Campbell|Solomon Islands|Solomons|Pacific|Benares|Ganges
|Saxeten River Gorge|Saxeten River|Royal National Park|Great Western Highway|Picton Road|Appin Road|Illawarra Highway
|Lebanon|Syria|Iran|Saudi Arabia|Tel Aviv|Bali|Fiji|Kuwait|Philippines|Kunduz|Mazar-e-Sharif|Herat|Quetta|Peshawar
|Bangladesh|Sri Lanka|Vietnam|Thailand|Korea|Colombia|Mexico|Italy|Rome|Moscow|Chechnya|Ukraine|Hong Kong|Tokyo
|Beijing|Geneva|Zurich|Cape Town|Johannesburg|Durban|Harare|Dora|Villawood|Port Hedland|Ashmore Reef|Macapa|Amazon
|Antarctica|Uzbekistan|Tajikistan|Turkey|Yemen|Somalia|Sudan|Oman|Qatar|Jordan|Norway|Sweden|Denmark|Netherlands
|Ireland|Scotland|Wales|Greece|Portugal|Austria|Poland|Hungary|Peru|Chile|Cuba|Haiti|Papua New Guinea|Bougainville
|Dili|Tonga|Samoa|Vanuatu|Honiara|Newcastle|Wollongong|Geelong|Ballarat|Bendigo|Townsville|Rockhampton|Mackay
|Gold Coast|Sunshine Coast|Katherine|Kalgoorlie|Bathurst|Orange|Dubbo|Wagga Wagga|Albury|Nowra|Kiama|Penrith
|Parramatta|Bankstown|Blacktown|Manly|Bondi|Cronulla|Helensburgh|Menai|Heathcote|Engadine|Lithgow|Katoomba
|Springwood|Glenbrook|Warragamba|Kurrajong|Windsor|Richmond|Wisemans Ferry|Jervis Bay|Ulladulla|Batemans Bay
|Moruya|Narooma|Bega|Cooma|Jindabyne|Kosciuszko|Murray River|Murray|Darling River|Snowy Mountains|Uluru
|Kakadu|Arnhem Land|Cape York|Torres Strait|Timor Sea|Coral Sea|Tasman Sea|Southern Ocean""".replace("\n", "")

ORG = """Taliban|Hamas|Al Qaeda|Qaeda|Qantas|Palestinian Authority|Pentagon|HIH|HIH Insurance|Labor|Labor Party
|Liberal Party|Liberals|National Party|Australian Democrats|Democrats|Greens|Northern Alliance|Islamic Jihad|ASIO
|United Nations|UN|UN Security Council|Security Council|Industrial Relations Commission|AFP|Ansett|Reserve Bank
|APRA|Rural Fire Service|New South Wales Rural Fire Service|Assa Abloy|Proteas|ASIC|Australian Federal Police
|Austar|IMF|International Monetary Fund|AMWU|Yallourn Energy|CFMEU|CNN|European Union|EU|BBC|NATO|Harris Scarfe
|National Australia Bank|ANZ|Finance Sector Union|Soccer Australia|Reuters|RFDS|Royal Flying Doctor Service|AIP
|Afghan Islamic Press|Sydney Swans|Westpac|Kosovo Liberation Army|Mitsubishi|Australian Bureau of Statistics|NASA
|Virgin Blue|American Airlines|Tyco|Centrelink|Fatah|ALP|Lashkar-e-Taiba|Jaish-e-Mohammad|Bureau of Meteorology
|State Emergency Service|SES|Australian Transport Safety Bureau|CASA|Channel Nine|ABC|ABC Radio|Police Federation
|Australian Workers Union|AWU|TWU|Australian Manufacturing Workers Union|Australian Security Intelligence Organisation
|Coast Guard|Australian Defence Force|ADF|Marine Corps|International Security Assistance Force|Department of Immigration
|Immigration Department|Israeli Army|Hezbollah|Microsoft|Telstra|Optus|One.Tel|Cricket Australia|Australian Cricket Board
|ICC|Anglican Church|Catholic Church|Commonwealth Bank|Ernst & Young|Dun & Bradstreet|Traveland|DFAT|Nu-Wood Decorative Millwork
|Royal Commission|Federal Court|High Court|Supreme Court|Family Court|Senate|World Bank|Red Cross|Amnesty International
|Greenpeace|FBI|CIA|White House|Kremlin|Enron|Boeing|Airbus|AFL|NRL|ACTU|ACCC|Medicare|Woolworths|Coles|BHP|BHP Billiton
|Rio Tinto|Macquarie Bank|News Limited|Fairfax|Seven Network|Nine Network|Ten Network|SBS|Olympic Committee
|Commonwealth Ministerial Action Group|Australian Institute of Health and Welfare|Defence Department""".replace(
    "\n", ""
)

TITLES = {
    "Mr",
    "Mrs",
    "Ms",
    "Dr",
    "Sir",
    "President",
    "Senator",
    "Minister",
    "Treasurer",
    "Premier",
    "General",
    "Reverend",
    "Chancellor",
    "Secretary",
    "Captain",
    "Sheikh",
    "Judge",
    "Justice",
    "Professor",
    "Inspector",
    "Superintendent",
    "Sergeant",
    "Commissioner",
    "Archbishop",
    "Bishop",
    "Colonel",
    "Commander",
    "Leader",
    "Spokesman",
    "spokesman",
    "spokeswoman",
    "Governor-General",
    "coach",
    "captain",
    "skipper",
    "batsman",
}
ORG_SUFFIX = {
    "Party",
    "Union",
    "Commission",
    "Council",
    "Authority",
    "Bank",
    "Corporation",
    "Airlines",
    "Service",
    "Bureau",
    "Department",
    "Association",
    "Federation",
    "Organisation",
    "Organization",
    "Institute",
    "University",
    "Court",
    "Company",
    "Group",
    "Agency",
    "Army",
    "Police",
    "Ministry",
    "Committee",
    "League",
    "Club",
    "Foundation",
    "Board",
    "Tribunal",
    "Insurance",
    "Limited",
    "Ltd",
    "Airways",
    "Front",
}
CONNECTORS = {"of", "and", "&", "for"}


def _table(spec: str, kind: str) -> dict[tuple[str, ...], str]:
    return {tuple(w for w, _, _ in split_words(name)): kind for name in spec.split("|") if name}


GAZETTEER = {**_table(LOC, "LOC"), **_table(ORG, "ORG"), **_table(PER, "PER")}
LONGEST = max(len(k) for k in GAZETTEER)


def _capitalised(word: str) -> bool:
    return (
        word[:1].isupper()
        and any(c.islower() for c in word[1:])
        or (len(word) > 1 and word.isupper() and word.isalpha())
    )


def tag(words: list[str]) -> list[str]:
    """Silver BIO tags: gazetteer (longest match), title + name -> PER, capitalised ... Suffix -> ORG."""
    tags = ["O"] * len(words)

    def mark(start: int, end: int, kind: str) -> None:
        tags[start] = "B-" + kind
        for k in range(start + 1, end):
            tags[k] = "I-" + kind

    i = 0
    while i < len(words):
        # ORG by suffix: a run of capitalised words (with of / and inside) ending in a suffix word
        j = i
        if words[i] in ("The", "A", "An", "In", "But", "And"):
            tags[i] = "O"
            i += 1
            continue
        while j < len(words) and (_capitalised(words[j]) or (words[j] in CONNECTORS and j > i)):
            j += 1
        run_end = max((k + 1 for k in range(i, j) if words[k] in ORG_SUFFIX), default=0)
        if run_end - i >= 2 and all(words[k][:1].isupper() or words[k] in CONNECTORS for k in range(i, run_end)):
            mark(i, run_end, "ORG")
            i = run_end
            continue
        for n in range(min(LONGEST, len(words) - i), 0, -1):
            kind = GAZETTEER.get(tuple(words[i : i + n]))
            if kind:
                mark(i, i + n, kind)
                i += n
                break
        else:
            if words[i] in TITLES and i + 1 < len(words) and _capitalised(words[i + 1]) and words[i + 1] not in TITLES:
                end = i + 1
                while end < len(words) and end - i <= 3 and _capitalised(words[end]) and words[end] not in TITLES:
                    end += 1
                if tags[i + 1] == "O":
                    mark(i + 1, end, "PER")
                i = end
                continue
            i += 1
    return tags


def _sentences(docs: list[str], rng: random.Random, n: int) -> list[tuple[list[str], list[str]]]:
    out = []
    for doc in docs:
        for sentence in split_sentences(doc):
            words = [w for w, _, _ in split_words(sentence)]
            if 6 <= len(words) <= 50 and not any('"' in w for w in words):
                out.append((words, tag(words)))
    with_entities = [s for s in out if any(t != "O" for t in s[1])]
    without = [s for s in out if all(t == "O" for t in s[1])]
    rng.shuffle(with_entities)
    rng.shuffle(without)
    n_plain = n // 5
    chosen = with_entities[: n - n_plain] + without[:n_plain]
    rng.shuffle(chosen)
    return chosen


def _write_conll(path: Path, sentences) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["-DOCSTART- O", ""]
    for words, tags in sentences:
        lines += [f"{w} {t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    docs = bundled_file("lee_background.cor").read_text(encoding="utf-8").splitlines()
    rng = random.Random(2024)
    _write_conll(OUT / "ner" / "lee_ner.train.conll", _sentences(docs[:240], rng, 480))
    _write_conll(OUT / "ner" / "lee_ner.dev.conll", _sentences(docs[240:], rng, 120))
    pairs = []
    for doc in docs:
        for sentence in split_sentences(doc):
            words = sentence.split()
            if 8 <= len(words) <= 30 and '"' not in sentence:
                half = len(words) // 2
                pairs.append({"prompt": " ".join(words[:half]), "completion": " " + " ".join(words[half:])})
    rng.shuffle(pairs)
    out = OUT / "generation" / "lee_halves.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(p) + "\n" for p in pairs[:600]), encoding="utf-8")


if __name__ == "__main__":
    main()
