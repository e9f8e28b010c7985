"""Chest X-ray vocabulary the semantic judge reads by rule.

Scope: CheXpert's observations (cardiomegaly, enlarged cardiomediastinum, lung
opacity and lesion, edema, consolidation, pneumonia, atelectasis, pneumothorax,
pleural effusion and other pleural findings, fracture, support devices), split
into the devices RadDiffBench names. Patterns run on normalised text (lower
case, hyphens as spaces, abbreviations expanded; see findings.normalise) and
are matched leftmost-longest, so "pericardial effusion" wins over "effusion"
and "nodular opacity" over "opacity". Anything outside the lexicon is compared
by sentence embedding instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "abnormality"


@dataclass(frozen=True)
class Concept:
    key: str
    label: str
    patterns: tuple[str, ...]
    # Natural phrasings: embedding anchors for phrases no pattern matches, and the calibration pairs.
    synonyms: tuple[str, ...] = ()
    parent: str | None = ROOT
    # Close findings or signs (both directions) that earn partial credit.
    related: tuple[str, ...] = ()
    device: bool = False
    normal_positions: frozenset[str] = frozenset()
    # Positions that "too deep / too low" covers for this device.
    deep_positions: frozenset[str] = frozenset()


def _device(
    key: str,
    label: str,
    patterns: tuple[str, ...],
    synonyms: tuple[str, ...],
    parent: str = "support_device",
    **kw: object,
) -> Concept:
    return Concept(key, label, patterns, synonyms, parent=parent, device=True, **kw)  # type: ignore[arg-type]


CONCEPTS: tuple[Concept, ...] = (
    Concept(
        ROOT,
        "abnormality",
        (r"abnormalit(y|ies)", r"acute (cardiopulmonary|intrathoracic) (process|abnormalit(y|ies)|disease|findings?)"),
        parent=None,
    ),
    # -- pleura
    Concept("pleural_abnormality", "pleural abnormality", (r"pleural (abnormalit(y|ies)|disease|process)",)),
    Concept(
        "pleural_effusion",
        "pleural effusion",
        (r"(pleural )?effusions?", r"pleural fluid", r"fluid in the (\w+ )?pleural (space|cavity)", r"hydrothorax"),
        ("pleural effusion", "fluid in the pleural space", "hydrothorax"),
        parent="pleural_abnormality",
    ),
    Concept(
        "costophrenic_blunting",
        "costophrenic angle blunting",
        (
            r"blunt(ed|ing)? (of )?(the )?((right|left|bilateral) )?costophrenic (angles?|sulcus|sulci|recess(es)?)",
            r"costophrenic (angle )?blunting",
        ),
        ("blunting of the costophrenic angle", "blunted costophrenic angle"),
        parent="pleural_abnormality",
        related=("pleural_effusion",),
    ),
    Concept(
        "pneumothorax",
        "pneumothorax",
        (r"pneumothora(x|ces)", r"(air|gas) in the (\w+ )?pleural (space|cavity)", r"pleural air"),
        ("pneumothorax", "air in the pleural space", "collapsed lung with pleural air"),
        parent="pleural_abnormality",
    ),
    Concept(
        "pneumothorax_sign",
        "sign of pneumothorax",
        (
            r"(apical|apex|pleural) lucenc(y|ies)",
            r"lucency (at|in|over) the (\w+ )?ap(ex|ices)",
            r"deep sulcus sign",
            r"(visible )?(visceral )?pleural (line|edge)",
        ),
        ("apical lucency", "deep sulcus sign"),
        parent="pleural_abnormality",
        related=("pneumothorax",),
    ),
    Concept(
        "pleural_thickening",
        "pleural thickening",
        (r"pleural thickening", r"thickened pleura", r"(apical )?pleural caps?", r"apical caps?"),
        ("pleural thickening", "apical pleural cap"),
        parent="pleural_abnormality",
    ),
    # -- heart and mediastinum
    Concept(
        "cardiac_silhouette_abnormality",
        "abnormal cardiac silhouette",
        (
            r"(abnormal|abnormality of the) (cardiac|heart) (silhouette|contour|size|shadow)",
            r"(cardiac|heart) (silhouette|contour) abnormalit(y|ies)",
            # CheXpert's "enlarged cardiomediastinum", the parent of cardiomegaly.
            r"enlarged cardiomediastinal (silhouette|contours?)",
            r"cardiomediastinal (silhouette |contours? )?(is |are )?enlarged|cardiomediastinal enlargement",
        ),
        ("abnormal cardiac silhouette", "abnormal heart contour"),
    ),
    Concept(
        "cardiomegaly",
        "cardiomegaly",
        (
            r"cardiomegaly",
            r"(enlarged|increased|large) (cardiac|heart) (silhouette|size|shadow)",
            r"(enlargement of the|enlarged|large|big) (heart|cardiac silhouette)",
            r"cardiac enlargement",
            r"(heart|cardiac silhouette|heart size|cardiac size) (is )?(enlarged|increased|large|big)",
            r"increased cardiothoracic ratio",
        ),
        ("cardiomegaly", "enlarged cardiac silhouette", "enlarged heart", "increased heart size"),
        parent="cardiac_silhouette_abnormality",
    ),
    Concept(
        "pericardial_effusion",
        "pericardial effusion",
        (r"pericardial effusions?",),
        ("pericardial effusion",),
        parent="cardiac_silhouette_abnormality",
    ),
    Concept(
        "mediastinal_widening",
        "widened mediastinum",
        (
            r"widen(ed|ing) (of the )?(superior )?mediastinum",
            r"mediastinal widening",
            r"wide mediastinum",
            r"enlarged cardiomediastinum",
        ),
        ("widened mediastinum", "mediastinal widening"),
    ),
    # -- lungs
    Concept(
        "lung_opacity",
        "lung opacity",
        (
            r"((airspace|parenchymal|pulmonary|lung|hazy|patchy) )?"
            r"(opacit(y|ies)|opacification|infiltrates?|densit(y|ies))",
            r"airspace disease",
            r"((increased|prominent) )?interstitial (markings?|prominence|thickening|pattern)",
        ),
        ("lung opacity", "airspace opacity", "pulmonary infiltrate"),
    ),
    Concept(
        "consolidation",
        "consolidation",
        (r"consolidations?", r"consolidative (opacit(y|ies)|change)", r"airspace consolidation"),
        ("consolidation", "airspace consolidation", "consolidative opacity"),
        parent="lung_opacity",
        related=("pneumonia", "atelectasis"),
    ),
    Concept(
        "pneumonia",
        "pneumonia",
        (r"(broncho)?pneumonias?", r"pneumonic infiltrates?"),
        ("pneumonia", "lung infection"),
        parent="lung_opacity",
        related=("consolidation",),
    ),
    Concept(
        "atelectasis",
        "atelectasis",
        (r"atelecta(sis|tic)( changes?)?", r"(lobar |segmental |subsegmental |lung )?collapse", r"volume loss"),
        ("atelectasis", "lobar collapse", "volume loss"),
        parent="lung_opacity",
        related=("consolidation",),
    ),
    Concept(
        "pulmonary_edema",
        "pulmonary edema",
        (r"((pulmonary|interstitial|alveolar) )?o?edema", r"fluid overload"),
        ("pulmonary edema", "interstitial edema", "alveolar edema"),
        parent="lung_opacity",
        related=("vascular_congestion", "heart_failure"),
    ),
    Concept(
        "heart_failure",
        "congestive heart failure",
        (r"(congestive )?heart failure", r"chf"),
        ("congestive heart failure",),
        related=("pulmonary_edema", "vascular_congestion"),
    ),
    Concept(
        "vascular_congestion",
        "pulmonary vascular congestion",
        (r"((pulmonary )?(vascular|venous) )congestion", r"cephali[sz]ation", r"kerley( b)? lines"),
        ("pulmonary vascular congestion", "pulmonary venous congestion"),
        related=("pulmonary_edema", "heart_failure"),
    ),
    Concept("lung_lesion", "lung lesion", (r"(lung|pulmonary) lesions?",), ("lung lesion",), parent="lung_opacity"),
    Concept(
        "nodule",
        "pulmonary nodule",
        (r"((pulmonary|lung) )?nodules?", r"nodular (opacit(y|ies)|densit(y|ies))"),
        ("pulmonary nodule", "lung nodule", "nodular opacity"),
        parent="lung_lesion",
        related=("mass",),
    ),
    Concept(
        "granuloma",
        "granuloma",
        (r"(calcified )?granulomas?", r"granulomatous (disease|changes?)"),
        ("calcified granuloma",),
        parent="nodule",
    ),
    Concept(
        "mass",
        "lung mass",
        (r"((pulmonary|lung) )?mass(es)?", r"tumou?rs?", r"neoplasms?"),
        ("lung mass", "lung tumor"),
        parent="lung_lesion",
        related=("nodule",),
    ),
    Concept(
        "emphysema",
        "emphysema",
        (
            r"((pulmonary|centrilobular|panlobular|paraseptal|bullous) )?emphysema(tous( changes?| lungs?)?)?",
            r"bullae",
        ),
        ("pulmonary emphysema", "emphysematous changes"),
        related=("hyperinflation", "copd"),
    ),
    Concept(
        "copd",
        "COPD",
        (r"copd", r"chronic obstructive (pulmonary|lung|airways?) disease", r"obstructive (lung|airways?) disease"),
        ("chronic obstructive pulmonary disease",),
        related=("hyperinflation", "emphysema"),
    ),
    Concept(
        "hyperinflation",
        "hyperinflated lungs",
        (
            r"hyper ?(inflat(ed|ion)|expan(ded|sion))( (of )?(the )?lungs?)?",
            r"(increased|large|high) lung volumes?",
        ),
        ("hyperinflated lungs", "hyperexpanded lungs", "hyperinflation"),
        related=("emphysema", "diaphragm_flattening", "copd"),
    ),
    Concept(
        "diaphragm_flattening",
        "flattened diaphragms",
        (
            r"flatten(ed|ing) (of )?(the )?((both|bilateral|right|left) )?(hemi ?)?diaphragms?",
            r"(hemi ?)?diaphragm(s|atic)? flattening",
            r"flat (hemi ?)?diaphragms?",
        ),
        ("flattened diaphragms", "flattening of the hemidiaphragms"),
        related=("hyperinflation",),
    ),
    Concept(
        "hypoinflation",
        "low lung volumes",
        (r"(low|decreased|reduced|diminished) lung volumes?", r"hypo ?(inflat(ed|ion)|expan(ded|sion))"),
        ("low lung volumes", "hypoinflated lungs"),
    ),
    Concept(
        "subcutaneous_emphysema",
        "subcutaneous emphysema",
        (r"(subcutaneous|soft tissue|chest wall) (emphysema|air|gas)",),
        ("subcutaneous emphysema", "subcutaneous air", "soft tissue air"),
    ),
    Concept(
        "pneumoperitoneum",
        "pneumoperitoneum",
        (
            r"pneumoperitoneum",
            r"free (intraperitoneal |peritoneal )?(air|gas)",
            r"(air|gas) (under|below|beneath) the (right |left )?(hemi ?)?diaphragms?",
        ),
        ("pneumoperitoneum", "free air under the diaphragm", "free intraperitoneal air"),
    ),
    Concept("fracture", "fracture", (r"fractures?", r"fractured"), ("rib fracture", "fracture")),
    # -- devices
    # A device category is defined by its kinds: naming a kind names the category (semantic.py).
    _device("support_device", "support device", (r"(support|medical) devices?",), ("support devices",), parent=ROOT),
    _device(
        "tube_or_catheter",
        "indwelling tube or catheter",
        (
            r"(indwelling |vascular |venous )?catheters?( (or|and) tubes?)?",
            r"(indwelling )?tubes?( (or|and) catheters?)?",
            r"(lines|tubes|catheters) (and|or) (lines|tubes|catheters)",
        ),
        ("indwelling catheter or tube", "lines and tubes"),
    ),
    _device(
        "cardiac_device",
        "implanted cardiac device",
        (
            r"(implant(ed|able) )?cardiac (implantable )?(electronic |rhythm )?devices?( (with )?leads?)?",
            r"implant(ed|able) (medical |electronic )?devices?",
            r"cieds?",
        ),
        ("implanted cardiac device", "cardiac implantable electronic device"),
    ),
    _device(
        "nasogastric_tube",
        "nasogastric tube",
        (r"(nasogastric|orogastric|enteric|feeding|gastric|dobhoff|nasoenteric|nasojejunal) (tube|catheter)s?",),
        ("nasogastric tube", "enteric tube", "feeding tube"),
        parent="tube_or_catheter",
        normal_positions=frozenset({"stomach"}),
    ),
    _device(
        "endotracheal_tube",
        "endotracheal tube",
        (r"endotracheal (tube|tubes)", r"intubat(ed|ion)", r"breathing tubes?"),
        ("endotracheal tube", "breathing tube"),
        parent="tube_or_catheter",
        normal_positions=frozenset({"above_carina", "trachea"}),
        deep_positions=frozenset({"bronchus"}),
    ),
    _device(
        "tracheostomy_tube",
        "tracheostomy tube",
        (r"tracheostomy( tube)?",),
        ("tracheostomy tube",),
        parent="tube_or_catheter",
    ),
    _device(
        "central_line",
        "central venous catheter",
        (
            r"central (venous )?(line|catheter)s?",
            r"(internal jugular|subclavian) (line|catheter)s?",
            r"port a caths?|portacaths?|mediports?|(chest|power|implanted|venous access) ports?",
        ),
        ("central venous catheter", "central line"),
        parent="tube_or_catheter",
        normal_positions=frozenset({"svc", "cavoatrial_junction"}),
        deep_positions=frozenset({"right_atrium"}),
    ),
    Concept(
        "picc",
        "PICC",
        (r"picc( line| catheter)?s?", r"peripherally inserted central (venous )?catheters?"),
        ("PICC line", "peripherally inserted central catheter"),
        parent="central_line",
        device=True,
        normal_positions=frozenset({"svc", "cavoatrial_junction"}),
        deep_positions=frozenset({"right_atrium"}),
    ),
    _device(
        "pacemaker",
        "pacemaker",
        (
            r"((cardiac|permanent|dual chamber|transvenous) )?pacemakers?( (with )?(leads?|wires?))?",
            r"pacers?",
            r"pacing (device|leads?|wires?)",
        ),
        ("cardiac pacemaker", "pacemaker with leads"),
        parent="cardiac_device",
        related=("defibrillator", "device_lead"),
    ),
    _device(
        "defibrillator",
        "implantable defibrillator",
        (r"(implantable cardioverter )?defibrillators?( leads?)?", r"\bicd\b( leads?)?"),
        ("implantable cardioverter defibrillator",),
        parent="cardiac_device",
        related=("pacemaker", "device_lead"),
    ),
    # A lead alone is part of a cardiac device: related to it, not the device itself.
    _device(
        "device_lead",
        "cardiac device lead",
        (r"((right |left )?(ventricular|atrial) )?leads?",),
        ("device lead",),
        related=("cardiac_device", "pacemaker", "defibrillator"),
    ),
)

BY_KEY = {c.key: c for c in CONCEPTS}

# Phrases that state absence with no negation word: (pattern, concept key).
ABSENCE_PHRASES: tuple[tuple[str, str], ...] = (
    (r"normal (cardiac|heart) (size|silhouette|contours?|shadow)", "cardiomegaly"),
    (r"normal(ly)? sized heart|normal size heart", "cardiomegaly"),
    (
        r"(heart|cardiac) size( and (the )?\w+( \w+)?)? (is |are |appears? )?(normal|within normal limits)",
        "cardiomegaly",
    ),
    (r"normal cardiomediastinal (silhouette|contours?|size)", "cardiomegaly"),
    (r"cardiomediastinal (silhouette|contours?) (is |are )?(normal|within normal limits|unremarkable)", "cardiomegaly"),
    (r"(sharp|clear|normal) costophrenic (angles?|sulci|sulcus)", "pleural_effusion"),
    (r"costophrenic (angles?|sulci) (are |is )?(sharp|clear)", "pleural_effusion"),
    (r"clear lungs?|lungs? (are |is )?clear|clear lung fields", "lung_opacity"),
    (r"normal lung (volumes?|inflation|expansion)|lung volumes? (is |are )?normal", "hyperinflation"),
    (r"normal (chest|study|examination|exam|radiograph|chest radiograph|chest x ray)", ROOT),
    (r"unremarkable (chest|study|examination|radiograph)", ROOT),
)

# Negation (NegEx-style): cues before the finding in its clause, or right after it.
PRE_NEGATION = (
    r"no|not|without|negative for|free of|clear of|absen(ce|t) of|absent|resolution of|resolved|no evidence of|"
    r"no signs? of|ruled out|fewer|less|less frequent|less common|lower (prevalence|rate|frequency|incidence) of"
)
# A negated list runs on through commas up to its "or"/"nor" ("no consolidation, effusion, or
# pneumothorax") and stops at a word that opens a new statement.
NEGATION_TERMINATORS = r"but|however|although|though|except|which|while|whereas|with"
POST_NEGATION = (
    r"(has |have )?resolved|(is |are )?absent|(is |are )?not (seen|present|identified|visible)|ruled out|"
    r"(is |are )?(less|more rarely) (common|frequent|prevalent|often seen)|(is |are )?(rare|rarer|uncommon)"
)

# Attributes. Cardiac chambers say "right"/"left" without meaning a side; read them as positions first.
POSITIONS: tuple[tuple[str, str], ...] = (
    (r"right atri(um|al)", "right_atrium"),
    (r"cavo ?atrial junction", "cavoatrial_junction"),
    (r"superior vena cava", "svc"),
    (r"(\d+(\.\d+)? ?cm )?above the carina", "above_carina"),
    (r"below the carina", "bronchus"),
    (r"(main )?bronch(us|i|ial)|bronchus intermedius", "bronchus"),
    (r"trachea|tracheal|tracheobronchial tree", "trachea"),
    (r"airways?", "airway"),
    (r"(distal |proximal |mid )?o?esophag(us|eal)", "esophagus"),
    (
        r"stomach|gastric (body|fundus|antrum|lumen)|(below|beneath|under) the (left )?(hemi ?)?diaphragm|"
        r"subdiaphragmatic|(in|into) the abdomen",
        "stomach",
    ),
    (r"too (low|deep|distal|far)|(advanced|positioned|placed|inserted) too (far|deep|low)", "too_deep"),
    (r"too (high|proximal|shallow)", "too_high"),
    (
        r"(standard|appropriate|satisfactory|good|adequate|expected|normal|correct|acceptable) position|"
        r"(appropriately|well|correctly|satisfactorily|adequately) (positioned|placed|sited)|terminates appropriately",
        "standard",
    ),
    (r"mal ?position(ed|ing)?|mis ?placed|mal ?placed|aberrant(ly)?|mis ?directed", "malpositioned"),
)
POSITION_PARENTS = {"bronchus": "airway", "trachea": "airway"}
NON_LATERAL = r"(right|left) (atri|ventric)\w*|(right|left) heart"

LATERALITY: tuple[tuple[str, str], ...] = (
    (r"bilateral(ly)?|both (sides|lungs|hemithoraces|bases|apices)|bi ?basilar|bi ?basal|bi ?apical", "bilateral"),
    (r"right( sided)?", "right"),
    (r"left( sided)?", "left"),
)
SEVERITY: tuple[tuple[str, str], ...] = (
    (r"small|mild|mildly|minimal|trace|tiny|slight|slightly|subtle", "small"),
    (r"moderate|moderately", "moderate"),
    (r"large|severe|massive|extensive|marked|markedly|substantial|significant|big", "large"),
)
ZONES: tuple[tuple[str, str], ...] = (
    (r"ap(ex|ices|ical)|apico\w*|bi ?apical", "apical"),
    (r"upper (lobes?|lungs?|zones?|fields?|lung zones?)", "upper"),
    (r"middle (lobes?|lungs?|zones?)|lingula(r)?", "middle"),
    (r"lower (lobes?|lungs?|zones?|fields?|lung zones?)|bas(e|es|al|ilar)|bi ?bas(al|ilar)|retrocardiac", "lower"),
)
ZONE_PARENTS = {"apical": "upper"}

# Words that frame a prediction rather than name a finding; dropped from the core text that gets embedded.
FRAMING_WORDS = frozenset(
    {
        "group",
        "groups",
        "a",
        "b",
        "images",
        "image",
        "patients",
        "patient",
        "cases",
        "more",
        "increased",
        "higher",
        "greater",
        "frequent",
        "prevalence",
        "presence",
        "evidence",
        "of",
        "shows",
        "show",
        "showing",
        "has",
        "have",
        "having",
        "with",
        "in",
        "the",
        "at",
        "is",
        "are",
        "seen",
        "present",
        "there",
        "noted",
        "visible",
        "finding",
        "findings",
        "compared",
        "than",
        "an",
        "and",
        "or",
        "to",
        "on",
    }
)

ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    (r"\bng\b", "nasogastric"),
    (r"\bog\b", "orogastric"),
    (r"\bett\b", "endotracheal tube"),
    (r"\bngt\b", "nasogastric tube"),
    (r"\baicd\b", "implantable cardioverter defibrillator"),
    (r"\bet\b(?= tubes?\b)", "endotracheal"),
    (r"\bsvc\b", "superior vena cava"),
    (r"\bcvc\b", "central venous catheter"),
    (r"\bij\b", "internal jugular"),
    (r"\bptx\b", "pneumothorax"),
    (r"\bcp\b(?= angles?\b)", "costophrenic"),
    (r"\brul\b", "right upper lobe"),
    (r"\brml\b", "right middle lobe"),
    (r"\brll\b", "right lower lobe"),
    (r"\blul\b", "left upper lobe"),
    (r"\blll\b", "left lower lobe"),
    (r"\bmain ?stem\b", "main"),
    (r"\bhemi ?thora(x|ces)\b", "hemithorax"),
)


def compile_alternatives(pairs: tuple[tuple[str, str], ...]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(rf"\b(?:{p})\b"), value) for p, value in pairs]
