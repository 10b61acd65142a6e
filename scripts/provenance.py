"""Snakemake script: results/provenance.json (git commit, dirty flag, config file, its content and hash, lock hash,
package versions)."""

import json
import sys

from sketchlaw.workflow.provenance import collect
from sketchlaw.workflow.tables import write_text

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
# results_dir is a path, not science: runs into different directories share one config hash.
science = {k: v for k, v in snakemake.config.items() if k != "results_dir"}  # noqa: F821
prov = collect(science, root=snakemake.params.root, config_file=snakemake.params.config_file)  # noqa: F821
write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n", snakemake.output[0])  # noqa: F821
print(json.dumps(prov, indent=2, sort_keys=True))
