# The label-graph branch (Dhall's thesis Chapters 5-6, docs/embeddings.md): the edge dataset of a taxonomy,
# label-only embeddings, encoder features of a trained image model, and joint image + label embeddings
# whose logits join the matrix (infer / evaluate / tables as for every experiment).


rule label_edges:
    wildcard_constraints:
        dataset=LABEL_DATASET_PATTERN,
    input:
        taxonomy="data/shards/{dataset}/taxonomy.parquet",
    output:
        edges="data/edges/{dataset}/edges.parquet",
        manifest="data/edges/{dataset}/manifest.json",
    params:
        settings=edges_settings,
    log:
        "logs/label_edges/{dataset}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=30,
        mem_mb=2000,
        cpus_per_task=1,
    shell:
        "taxonbench label-edges --taxonomy {input.taxonomy} --dataset {wildcards.dataset}"
        " --out data/edges/{wildcards.dataset} --settings {params.settings:q} > {log} 2>&1"


rule train_label_embedding:
    wildcard_constraints:
        dataset=LABEL_DATASET_PATTERN,
        experiment=LABEL_PATTERN,
    input:
        taxonomy="data/shards/{dataset}/taxonomy.parquet",
        manifest="data/edges/{dataset}/manifest.json",
    output:
        embedding="results/label_embeddings/{dataset}/{experiment}/embedding.pt",
        train_log="results/label_embeddings/{dataset}/{experiment}/train_log.csv",
        metrics="results/metrics/{dataset}/{experiment}/label_graph.json",
    params:
        settings=label_experiment_settings,
    log:
        "logs/label_embeddings/{dataset}/{experiment}.log",
    conda:
        "../../environment.yml"
    threads: train_threads
    resources:
        runtime=MINUTES_PER_DAY,  # thousands of epochs over ETHEC's 2,000 edges
        mem_mb=4000,
        cpus_per_task=job_threads,
    shell:
        "taxonbench train-label-embedding --taxonomy {input.taxonomy} --edges data/edges/{wildcards.dataset}"
        " --out results/label_embeddings/{wildcards.dataset}/{wildcards.experiment} --metrics {output.metrics}"
        " --threads {threads} --settings {params.settings:q} > {log} 2>&1"


rule features:
    # the encoder's output of a trained image experiment (the frozen CNN features of the joint embeddings)
    wildcard_constraints:
        method=IMAGE_PATTERN,
    input:
        model=model_file,
        manifest="data/shards/{dataset}/manifest.json",
    output:
        features="results/features/{dataset}/{method}/{split}.parquet",
        sidecar="results/features/{dataset}/{method}/{split}.json",
    params:
        shards=shards_dir,
        batch_size=eval_batch_size,
    log:
        "logs/features/{dataset}/{method}/{split}.log",
    conda:
        "../../environment.yml"
    threads: train_threads
    resources:
        runtime=logits_runtime,
        mem_mb=8000,
        cpus_per_task=job_threads,
        gpu=logits_gpu,
    shell:
        "taxonbench logits --features --model {input.model} --shards {params.shards} --split {wildcards.split}"
        " --batch-size {params.batch_size} --threads {threads} --out {output.features} > {log} 2>&1"


rule train_joint_embedding:
    wildcard_constraints:
        dataset=LABEL_DATASET_PATTERN,
        method=JOINT_PATTERN,
    input:
        unpack(joint_inputs),
    output:
        model="results/models/{dataset}/{method}/model.pt",
        train_log="results/models/{dataset}/{method}/train_log.csv",
        metrics="results/metrics/{dataset}/{method}/label_graph.json",
    params:
        settings=joint_settings,
        init=init_argument,
    log:
        "logs/train/{dataset}/{method}.log",
    conda:
        "../../environment.yml"
    threads: train_threads
    resources:
        runtime=MINUTES_PER_DAY,
        mem_mb=8000,
        cpus_per_task=job_threads,
    shell:
        "taxonbench train-joint-embedding --taxonomy {input.taxonomy} --train {input.train} --val {input.val}"
        " {params.init} --out results/models/{wildcards.dataset}/{wildcards.method} --metrics {output.metrics}"
        " --threads {threads} --settings {params.settings:q} > {log} 2>&1"


rule joint_logits:
    wildcard_constraints:
        method=JOINT_PATTERN,
    input:
        model="results/models/{dataset}/{method}/model.pt",
        taxonomy="data/shards/{dataset}/taxonomy.parquet",
        features=joint_features,
    output:
        scores="results/logits/{dataset}/{method}/{split}.parquet",
        sidecar="results/logits/{dataset}/{method}/{split}.json",
    log:
        "logs/logits/{dataset}/{method}/{split}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=60,
        mem_mb=4000,
        cpus_per_task=1,
    shell:
        "taxonbench joint-logits --model {input.model} --taxonomy {input.taxonomy} --features {input.features}"
        " --out {output.scores} > {log} 2>&1"
