"""Snakemake script: results/provenance.json (git commit, dirty flag, config file, its content and hash, lock hash,
package versions)."""

import json
import sys

from sketchlaw.workflow.provenance import collect, science
from sketchlaw.workflow.tables import write_text

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
prov = collect(science(snakemake.config), root=snakemake.params.root, config_file=snakemake.params.config_file)  # noqa: F821
write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n", snakemake.output[0])  # noqa: F821
print(json.dumps(prov, indent=2, sort_keys=True))
