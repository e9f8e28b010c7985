"""RadDiff's own small models, trained here on synthetic radiographs: a CheXzero-style CLIP (clip.py) and an
Idefics3 captioning and grounding VLM (vlm.py); `raddiff-train` (cli.py) trains, evaluates and installs them."""
