rule leaderboard:
    # one board per dataset (every experiment x inference, columns by metric family) and their JSON for dvc metrics
    input:
        metrics_files(),
        label_metrics_files(),
    output:
        boards=leaderboard_outputs(),
        json="results/metrics/leaderboard.json",
    params:
        experiments=leaderboard_experiments,
    log:
        "logs/leaderboard.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=15,
        mem_mb=2000,
        cpus_per_task=1,
    shell:
        "taxonbench leaderboard --experiments {params.experiments:q} --out results/leaderboard"
        " --json {output.json} {input} > {log} 2>&1"


rule results_page:
    # docs/results.md: the leaderboards and every paper table of the run, and the first board's figure for the README
    input:
        tables=expand("results/tables/{table}.csv", table=list(PARAMS["tables"])),
        boards=expand("results/leaderboard/{dataset}.md", dataset=LEADERBOARD_DATASETS),
        figure=expand("results/leaderboard/{dataset}.png", dataset=LEADERBOARD_DATASETS[:1]),
    output:
        page="docs/results.md",
        figure="docs/img/leaderboard.png",
    params:
        tables=tables_settings,
    log:
        "logs/results_page.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=15,
        mem_mb=2000,
        cpus_per_task=1,
    shell:
        "taxonbench results-page --tables {params.tables:q} --out {output.page} --figure {input.figure}"
        " --figure-out {output.figure} {input.boards} > {log} 2>&1"
