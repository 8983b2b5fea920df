rule train:
    wildcard_constraints:
        method=IMAGE_PATTERN,  # a joint label embedding trains in workflow/rules/label_graph.smk
    input:
        manifest="data/shards/{dataset}/manifest.json",
        taxonomy="data/shards/{dataset}/taxonomy.parquet",
    output:
        model="results/models/{dataset}/{method}/model.pt",
        train_log="results/models/{dataset}/{method}/train_log.csv",
    params:
        settings=method_settings,
        shards=shards_dir,
        out=model_dir,
        launcher=train_launcher,
    log:
        "logs/train/{dataset}/{method}.log",
    conda:
        "../../environment.yml"
    threads: train_threads
    resources:
        runtime=train_runtime,
        mem_mb=train_mem_mb,
        cpus_per_task=train_cpus,
        gpu=train_gpus,
    shell:
        "{params.launcher} train --shards {params.shards} --out {params.out}"
        " --settings {params.settings:q} --no-progress > {log} 2>&1"


rule logits:
    wildcard_constraints:
        method=IMAGE_PATTERN,
    input:
        unpack(unseen_of_input),  # datasets.<name>.unseen_of: the seen dataset's taxonomy, checked against
        model=model_file,  # trained on this dataset, or on the experiment's `trained_on`
        manifest="data/shards/{dataset}/manifest.json",
    output:
        scores="results/logits/{dataset}/{method}/{split}.parquet",
        sidecar="results/logits/{dataset}/{method}/{split}.json",
    params:
        shards=shards_dir,
        batch_size=eval_batch_size,
        unseen_of=unseen_of_argument,
    log:
        "logs/logits/{dataset}/{method}/{split}.log",
    conda:
        "../../environment.yml"
    threads: train_threads
    resources:
        runtime=logits_runtime,
        mem_mb=8000,
        cpus_per_task=job_threads,
        gpu=logits_gpu,
    shell:
        "taxonbench logits --model {input.model} --shards {params.shards} --split {wildcards.split}"
        " --batch-size {params.batch_size} --threads {threads} {params.unseen_of} --out {output.scores} > {log} 2>&1"
