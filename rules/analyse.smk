# Aggregation into tidy tables, provenance, and exponent fitting.


rule provenance:
    output:
        f"{R}/provenance.json",
    log:
        f"{R}/logs/provenance.log",
    params:
        state=provenance_params(),
        root=workflow.basedir,
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/provenance.py"


rule aggregate:
    input:
        exact=lambda wc: runs(wc.experiment, "exact"),
        montecarlo=lambda wc: runs(wc.experiment, "mc"),
        baselines=lambda wc: runs(wc.experiment, "baselines"),
        provenance=f"{R}/provenance.json",
    output:
        parquet=f"{R}/tables/{{experiment}}.parquet",
        csv=f"{R}/tables/{{experiment}}.csv",
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
        tables=[f"{R}/tables/{e}.parquet" for e in ENABLED],
        limits=[f"{R}/tables/{e}_limit.parquet" for e in LIMITS],
        provenance=f"{R}/provenance.json",
    output:
        exponents=f"{R}/tables/exponents.csv",
        forms=f"{R}/tables/exponent_forms.csv",
        markdown=f"{R}/tables/exponents.md",
        diagnostics=f"{R}/tables/fit_diagnostics.parquet",
        frontier=f"{R}/tables/compute_frontier.csv",
    log:
        f"{R}/logs/fit.log",
    benchmark:
        f"{R}/benchmarks/fit.tsv"
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/fit.py"
