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


# Provenance is recorded, never a rerun trigger: each job takes it when it runs (sketchlaw.workflow.provenance.of_job)
# instead of reading provenance.json, which only the page reads; so a new commit reruns only the page, and a table or
# figure keeps the provenance of the run that made it. (A job downstream of provenance.json, even as ancient(), would
# be worse than rerun: Snakemake skips the own-change checks of every job below one that must run, so an edited
# notebook or changed params would go unnoticed whenever the tree is dirty.)
rule aggregate:
    input:
        exact=lambda wc: runs(wc.experiment, "exact"),
        montecarlo=lambda wc: runs(wc.experiment, "mc"),
        baselines=lambda wc: runs(wc.experiment, "baselines"),
        followups=lambda wc: runs(wc.experiment, "followup"),
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


# One fit per experiment (its table, limit and auxiliary tables only), so that a change to one experiment refits and
# redraws that experiment alone; `exponents` gathers them into the tables every reader opens.
rule fit:
    input:
        tables=lambda wc: experiment_tables(wc.experiment),
    output:
        **fit_outputs("{experiment}"),
    log:
        f"{R}/logs/fit/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/fit/{{experiment}}.tsv"
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/fit.py"


rule exponents:
    input:
        fits=[f for e in ENABLED for f in fit_outputs(e).values()],
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
        f"{R}/logs/exponents.log",
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/exponents.py"
