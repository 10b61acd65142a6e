# Figures: one papermill notebook per figure (it only reads tables), then the HTML index.
#
# Snakemake's report (`snakemake --report report.zip`): each figure's caption is report/<notebook>.rst, generated
# from the notebook's CAPTION cell by `make captions`. A report() caption is one file per rule, so the notebook
# rule's report/figure.rst inserts the figure's own text from params.


rule notebook:
    input:
        notebook="notebooks/{notebook}.ipynb",
        tables=lambda wc: experiment_tables(NOTEBOOKS[wc.notebook]),
        fit=lambda wc: list(fit_outputs(NOTEBOOKS[wc.notebook]).values()),
    output:
        ipynb=f"{R}/notebooks/{{notebook}}.ipynb",
        html=f"{R}/notebooks/{{notebook}}.html",
        provenance=f"{R}/notebooks/{{notebook}}.provenance.json",
        png=report(f"{R}/figures/{{notebook}}.png", caption="../report/figure.rst", category="Figures",
                   subcategory="{notebook}"),
        pdf=f"{R}/figures/{{notebook}}.pdf",
        caption=f"{R}/figures/{{notebook}}.json",
        layout=f"{R}/figures/{{notebook}}.layout.json",
    log:
        f"{R}/logs/notebook/{{notebook}}.log",
    benchmark:
        f"{R}/benchmarks/notebook/{{notebook}}.tsv"
    # Two notebook jobs starting at once can pick the same free port for their kernels (jupyter_client probes a port,
    # releases it, and the kernel binds it later): the loser dies with "Address already in use" before running a
    # cell. The notebook only reads tables, so running it again is safe.
    retries: 2
    params:
        tables=lambda wc, input: os.path.dirname(input.tables[0]),
        figures=lambda wc, output: os.path.dirname(output.png),
        caption=lambda wc: notebook_caption(wc.notebook),
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/run_notebook.py"


# The page: every figure and executed notebook, the exponent table and the forms, a link to every table (the files it
# reads or links are its inputs), and the provenance of this run (the page is what a new commit reruns).
rule report:
    input:
        notebooks=[f"{R}/notebooks/{nb}.html" for nb in ACTIVE_NOTEBOOKS],
        figures=[f"{R}/figures/{nb}.png" for nb in ACTIVE_NOTEBOOKS],
        pdfs=[f"{R}/figures/{nb}.pdf" for nb in ACTIVE_NOTEBOOKS],
        captions=[f"{R}/figures/{nb}.json" for nb in ACTIVE_NOTEBOOKS],
        tables=[f"{R}/tables/{t}.{ext}" for t in [*ENABLED, *AUX] for ext in ("csv", "parquet")],
        exponents=f"{R}/tables/exponents.csv",
        markdown=f"{R}/tables/exponents.md",
        forms=f"{R}/tables/exponent_forms.csv",
        diagnostics=f"{R}/tables/fit_diagnostics.parquet",
        frontier=f"{R}/tables/compute_frontier.csv",
        diverged=f"{R}/tables/diverged.csv",
        provenance=f"{R}/provenance.json",
    output:
        f"{R}/index.html",
    log:
        f"{R}/logs/report.log",
    params:
        tables_dir=lambda wc, input: os.path.dirname(input.exponents),
        logs_dir=lambda wc, output: os.path.join(os.path.dirname(output[0]), "logs"),
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/report.py"
