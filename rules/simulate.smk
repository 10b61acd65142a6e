# Training. Each job draws the sketched problems it uses from their seeds (a problem is cheap next to a process start
# of its own). Work is batched per sketch family (every M and N of one a, b and seed in one job: grid.family_groups),
# exact and Monte Carlo alike; each Monte Carlo point keeps the seed of its own coordinates, so batching changes no
# row. Each declares its memory (memory_mb: it grows with M²). The long jobs (the M = ∞ limits, exact families) have
# priority, so that the shorter Monte Carlo jobs fill the cores at the end instead of one long job running alone.

rule train_exact:
    output:
        f"{R}/runs/{{experiment}}/exact/{{stem}}.parquet",
    log:
        f"{R}/logs/train_exact/{{experiment}}/{{stem}}.log",
    benchmark:
        f"{R}/benchmarks/train_exact/{{experiment}}/{{stem}}.tsv"
    params:
        jobs=lambda wc: [job_params(config, j) for j in EXACT[(wc.experiment, wc.stem)]],
    resources:
        mem_mb=lambda wc: memory_mb(EXACT[(wc.experiment, wc.stem)]),
    priority: 1
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/train_exact.py"


rule train_montecarlo:
    output:
        f"{R}/runs/{{experiment}}/mc/{{stem}}.parquet",
    log:
        f"{R}/logs/train_montecarlo/{{experiment}}/{{stem}}.log",
    benchmark:
        f"{R}/benchmarks/train_montecarlo/{{experiment}}/{{stem}}.tsv"
    params:
        jobs=lambda wc: [job_params(config, j) for j in MONTECARLO[(wc.experiment, wc.stem)]],
    resources:
        mem_mb=lambda wc: memory_mb(MONTECARLO[(wc.experiment, wc.stem)]),
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/train_montecarlo.py"


rule train_baselines:
    output:
        f"{R}/runs/{{experiment}}/baselines/{{stem}}.parquet",
    log:
        f"{R}/logs/train_baselines/{{experiment}}/{{stem}}.log",
    benchmark:
        f"{R}/benchmarks/train_baselines/{{experiment}}/{{stem}}.tsv"
    params:
        jobs=lambda wc: [job_params(config, j) for j in BASELINES[(wc.experiment, wc.stem)]],
    resources:
        mem_mb=lambda wc: memory_mb(BASELINES[(wc.experiment, wc.stem)]),
    priority: 1
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/train_baselines.py"


rule train_limit:
    output:
        parquet=f"{R}/tables/{{experiment}}_limit.parquet",
        csv=f"{R}/tables/{{experiment}}_limit.csv",
    log:
        f"{R}/logs/train_limit/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/train_limit/{{experiment}}.tsv"
    params:
        table="limit",
        job=lambda wc: limit_params(config, wc.experiment),
    priority: 2
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/auxiliary_table.py"


# The follow-ups (docs/METHODS.md §18): one job per sketch family (every M of one a, b and seed): schedules and batch
# exact, reuse Monte Carlo at every N, each (problem, N) with every L of its grid (common random numbers across L).
rule train_followup:
    output:
        f"{R}/runs/{{experiment}}/followup/{{stem}}.parquet",
    log:
        f"{R}/logs/train_followup/{{experiment}}/{{stem}}.log",
    benchmark:
        f"{R}/benchmarks/train_followup/{{experiment}}/{{stem}}.tsv"
    params:
        jobs=lambda wc: [followup_params(config, j) for j in FOLLOWUPS[(wc.experiment, wc.stem)]],
    resources:
        mem_mb=lambda wc: memory_mb(FOLLOWUPS[(wc.experiment, wc.stem)]),
    priority: 1
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/train_followup.py"


# The unsketched schedule comparison (geometric decay against the power decay to zero) and the finite-size theory of
# the schedules' window rows: no drawn sketch, a job each.
rule schedule_claim:
    output:
        parquet=f"{R}/tables/{{experiment}}_claim.parquet",
        csv=report(f"{R}/tables/{{experiment}}_claim.csv", caption="../report/table.rst", category="Tables",
                   subcategory="experiments"),
    log:
        f"{R}/logs/schedule_claim/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/schedule_claim/{{experiment}}.tsv"
    params:
        table="claim",
        job=lambda wc: claim_params(config, wc.experiment),
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/auxiliary_table.py"


rule schedule_finite:
    output:
        parquet=f"{R}/tables/{{experiment}}_finite.parquet",
        csv=f"{R}/tables/{{experiment}}_finite.csv",
    log:
        f"{R}/logs/schedule_finite/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/schedule_finite/{{experiment}}.tsv"
    params:
        table="finite",
        job=lambda wc: finite_params(config, wc.experiment),
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/auxiliary_table.py"


# The real dataset's spectrum and target energies, with bootstrap resamples of its rows (their spread is the fitted
# degrees' interval): no sketch, a job of its own.
rule dataset_spectrum:
    output:
        parquet=f"{R}/tables/{{experiment}}_spectrum.parquet",
        csv=f"{R}/tables/{{experiment}}_spectrum.csv",
    log:
        f"{R}/logs/dataset_spectrum/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/dataset_spectrum/{{experiment}}.tsv"
    params:
        table="spectrum",
        job=lambda wc: spectrum_params(config, wc.experiment),
    priority: 2
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/auxiliary_table.py"


# The compute frontier's finite-size theory: the deterministic equivalent's continuous frontier, no drawn sketch.
rule frontier_theory:
    output:
        parquet=f"{R}/tables/{{experiment}}_theory.parquet",
        csv=f"{R}/tables/{{experiment}}_theory.csv",
    log:
        f"{R}/logs/frontier_theory/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/frontier_theory/{{experiment}}.tsv"
    params:
        table="frontier",
        job=lambda wc: frontier_params(config, wc.experiment),
    priority: 2
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/auxiliary_table.py"


# The covariates experiment's stability thresholds on a small d (docs/METHODS.md §21): the bounds and the step sizes
# where the d-dimensional fourth-moment recursion and full-dimensional SGD diverge, per coordinate law.
rule covariates_stability:
    output:
        parquet=f"{R}/tables/{{experiment}}_stability.parquet",
        csv=f"{R}/tables/{{experiment}}_stability.csv",
    log:
        f"{R}/logs/covariates_stability/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/covariates_stability/{{experiment}}.tsv"
    params:
        table="stability",
        job=lambda wc: stability_params(config, wc.experiment),
    priority: 2
    conda:
        "../envs/sketchlaw.yaml"
    script:
        "../scripts/auxiliary_table.py"
