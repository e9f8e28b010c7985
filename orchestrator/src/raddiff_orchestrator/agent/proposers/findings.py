"""Whole radiological findings among a report's phrases, for the offline proposer on report texts.

A report's most frequent words are rarely findings ("change", "spine", "tip", "heart size"): they
separate two sets because they sit next to one ("degenerative changes of the spine", "the tip of the
catheter"). On reports the offline proposer therefore contrasts only phrases that are a finding by rule:

- they name a pathology or a device ("granuloma", "pacemaker": FINDING_NOUNS), or
- they qualify a sign or a structure ("elevated right hemidiaphragm", "low lung volume", "degenerative
  change": a DESCRIPTOR or SIGN_NOUN with at least one other content word), and
- they end on their noun, not on a side, an adjective or a hedge ("opacity in the left", "calcified").

A predicative clause is read as its noun phrase ("the aorta is tortuous" -> "tortuous aorta"), so a finding
counts the same however a report phrases it. The word lists are chest X-ray vocabulary (CheXpert's
observations, common devices and signs), in the singular form the phrases use.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from raddiff_orchestrator.agent.proposers.phrases import MODIFIERS, STOPWORDS, affirmed_runs, ngrams

# Pathologies and devices: a finding on their own.
_FINDING_TEXT = """
    cardiomegaly effusion opacity opacification atelectasis edema consolidation pneumonia pneumothorax
    hydropneumothorax pneumomediastinum pneumoperitoneum granuloma nodule mass lesion fracture scoliosis
    dextroscoliosis levoscoliosis kyphosis kyphoscoliosis lordosis hernia emphysema bulla bleb scarring scar
    fibrosis calcification infiltrate infiltration congestion spondylosis osteophyte osteopenia osteoporosis
    eventration bronchiectasis adenopathy lymphadenopathy aneurysm cyst cavity abscess empyema hematoma
    metastasis tumor neoplasm malignancy carcinoma collapse hyperinflation hyperexpansion hypoinflation
    atherosclerosis arthritis osteoarthritis degeneration tortuosity ectasia thickening fusion crowding
    cardiomyopathy copd pectus excavatum
    pacemaker defibrillator pacer icd aicd catheter picc stent sternotomy thoracotomy prosthesis cabg drain
    port portacath tracheostomy lobectomy pneumonectomy mastectomy cholecystectomy"""
FINDING_NOUNS = frozenset(_FINDING_TEXT.split())
# Signs a finding names with what they affect ("blunting of the costophrenic angle"), never alone.
_SIGN_TEXT = """
    elevation flattening blunting widening enlargement prominence deformity lucency wire clip lead line tube
    hardware suture staple coil"""
SIGN_NOUNS = frozenset(_SIGN_TEXT.split())
# What makes a structure, or a vague noun ("change", "disease"), a finding: "low lung volume".
_DESCRIPTOR_TEXT = """
    degenerative granulomatous calcified tortuous hyperexpanded hyperinflated hypoinflated hyperlucent
    overinflated underinflated enlarged large low elevated blunted widened ectatic dilated atherosclerotic
    interstitial airspace reticular nodular streaky patchy linear flattened postoperative postsurgical
    surgical healed prominent increased fibrotic foreign"""
DESCRIPTORS = frozenset(_DESCRIPTOR_TEXT.split())
# Hedges and verbs that introduce a finding: never its first word ("represent atelectasis").
_LEAD_IN_TEXT = """
    represent reflect suggest suggesting suggestive compatible consistent concerning concern compared suspicious
    indicate indicating favor possible questionable worrisome"""
_LEAD_INS = frozenset(_LEAD_IN_TEXT.split())
_ANATOMY_MODIFIERS = frozenset({"lung", "lobe", "zone", "base", "tissue"})  # the nouns among MODIFIERS
_COPULAS = frozenset({"is", "are", "was", "were", "appear", "appears", "remain", "remains"})
_ADJECTIVE_ENDINGS = ("al", "ic", "ar", "ary", "ous", "ive", "ed", "ly")


def is_finding(phrase: str) -> bool:
    """Whether a phrase (lower case, singular words) names a whole finding; see the module's rule."""
    words = phrase.split()
    content = [w for w in words if w not in STOPWORDS]
    if not content or words[0] in STOPWORDS or words[0] in _LEAD_INS or not _ends_on_noun(words[-1]):
        return False
    if any(w in FINDING_NOUNS for w in content):
        return True
    # A side or a severity does not say what a sign affects: "mild elevation" is a fragment.
    named = [w for w in content if w not in MODIFIERS or w in DESCRIPTORS or w in _ANATOMY_MODIFIERS]
    return len(named) >= 2 and any(w in SIGN_NOUNS or w in DESCRIPTORS for w in named)


def _ends_on_noun(word: str) -> bool:
    if word in FINDING_NOUNS or word in SIGN_NOUNS:
        return True
    if word in STOPWORDS or word in DESCRIPTORS or word in _LEAD_INS:
        return False
    # Of the modifiers only the anatomical nouns may end a finding ("right lower lobe"), not "right" or "mild".
    if word in MODIFIERS:
        return word in _ANATOMY_MODIFIERS
    return not word.endswith(_ADJECTIVE_ENDINGS)


def noun_phrase_runs(text: str) -> Iterator[list[str]]:
    """A report's affirmed runs, a predicative one read as its noun phrase: "the lung are hyperexpanded" ->
    "hyperexpanded lung", when all that follows the verb describes ("the heart is normal" stays as it is)."""
    for run in affirmed_runs(text):
        verb = next((i for i, w in enumerate(run) if w in _COPULAS), None)
        if verb is None:
            yield run
            continue
        subject = [w for w in run[:verb] if w not in STOPWORDS]
        said = [w for w in run[verb + 1 :] if w not in STOPWORDS]
        if subject and said and all(w in DESCRIPTORS or w in MODIFIERS for w in said):
            yield said + subject
        else:
            yield run


@lru_cache(maxsize=8192)
def finding_set(text: str, max_words: int = 4) -> frozenset[str]:
    """The distinct phrases of one report that name a whole finding."""
    return frozenset(p for run in noun_phrase_runs(text) for p in ngrams(run, max_words) if is_finding(p))
