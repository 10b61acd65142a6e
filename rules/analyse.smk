# Aggregation into tidy tables, provenance, and exponent fitting. Tables (CSV) and provenance.json are in
# Snakemake's report (captions in report/).


rule provenance:
    output:
        report(f"{R}/provenance.json", caption="../report/provenance.rst", category="Provenance"),
    log:
        f"{R}/logs/provenance.log",
    params:
        state=provenance_params(),
        root=workflow.basedir,
        config_file=config_file_label(workflow.overwrite_configfiles, workflow.basedir),
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/provenance.py"


rule aggregate:
    input:
        exact=lambda wc: runs(wc.experiment, "exact"),
        montecarlo=lambda wc: runs(wc.experiment, "mc"),
        baselines=lambda wc: runs(wc.experiment, "baselines"),
        followups=lambda wc: runs(wc.experiment, "followup"),
        provenance=f"{R}/provenance.json",
    output:
        parquet=f"{R}/tables/{{experiment}}.parquet",
        csv=report(f"{R}/tables/{{experiment}}.csv", caption="../report/table.rst", category="Tables",
                   subcategory="experiments"),
    log:
        f"{R}/logs/aggregate/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/aggregate/{{experiment}}.tsv"
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/aggregate.py"


rule fit:
    input:
        tables=[f"{R}/tables/{e}.parquet" for e in ENABLED] + [f"{R}/tables/{t}.parquet" for t in AUX],
        limits=[f"{R}/tables/{e}_limit.parquet" for e in LIMITS],
        provenance=f"{R}/provenance.json",
    output:
        exponents=report(f"{R}/tables/exponents.csv", caption="../report/exponents.rst", category="Tables",
                         subcategory="fits"),
        forms=report(f"{R}/tables/exponent_forms.csv", caption="../report/exponent_forms.rst", category="Tables",
                     subcategory="fits"),
        markdown=f"{R}/tables/exponents.md",
        diagnostics=f"{R}/tables/fit_diagnostics.parquet",
        frontier=report(f"{R}/tables/compute_frontier.csv", caption="../report/compute_frontier.rst",
                        category="Tables", subcategory="fits"),
        diverged=report(f"{R}/tables/diverged.csv", caption="../report/diverged.rst", category="Tables",
                        subcategory="fits"),
    log:
        f"{R}/logs/fit.log",
    benchmark:
        f"{R}/benchmarks/fit.tsv"
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/fit.py"
