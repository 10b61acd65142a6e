"""Write seaborn's figure theme as rcParams (sketchlaw.present.plotting.THEME_FILE): `make style`, after a seaborn
or matplotlib update (tests/test_plotting.py says when the file has drifted)."""

import json

from sketchlaw.present.plotting import THEME_FILE, seaborn_theme

THEME_FILE.write_text(json.dumps(seaborn_theme(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
print(f"wrote {THEME_FILE}")
