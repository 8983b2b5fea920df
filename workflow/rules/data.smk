rule download:
    # Only for real datasets with `download: true` (prepare_inputs); the synthetic default never asks for it.
    output:
        "data/raw/.downloaded/{dataset}.json",
    params:
        settings=prepare_settings,
    log:
        "logs/download/{dataset}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=MINUTES_PER_DAY,  # upstream archives of tens to hundreds of GB
        mem_mb=2000,
        cpus_per_task=1,
    shell:
        "taxonbench download --dataset {wildcards.dataset} --done {output}"
        " --settings {params.settings:q} > {log} 2>&1"


rule prepare:
    input:
        prepare_inputs,
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
    threads: prepare_workers
    resources:
        runtime=prepare_runtime,
        mem_mb=prepare_mem_mb,
        cpus_per_task=prepare_workers,
    shell:
        "taxonbench prepare --dataset {wildcards.dataset} --out {params.out} --workers {threads}"
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
    resources:
        runtime=15,
        mem_mb=2000,
        cpus_per_task=1,
    shell:
        "taxonbench samples-figure --shards {params.shards} --out {output} > {log} 2>&1"
