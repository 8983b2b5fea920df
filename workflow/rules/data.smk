rule prepare:
    output:
        manifest="data/shards/{dataset}/manifest.json",
        taxonomy="data/shards/{dataset}/taxonomy.parquet",
    params:
        settings=prepare_settings,
        out=shards_dir,
    log:
        "logs/prepare/{dataset}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=60,
        mem_mb=4000,
    shell:
        "taxonbench prepare --dataset {wildcards.dataset} --out {params.out}"
        " --settings {params.settings:q} > {log} 2>&1"


rule samples_figure:
    input:
        manifest="data/shards/{dataset}/manifest.json",
    output:
        "results/figures/{dataset}_samples.png",
    params:
        shards=shards_dir,
    log:
        "logs/figures/{dataset}_samples.log",
    conda:
        "../../environment.yml"
    shell:
        "taxonbench samples-figure --shards {params.shards} --out {output} > {log} 2>&1"
