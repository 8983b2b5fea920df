rule fit_inference:
    wildcard_constraints:
        inference=FITTED_PATTERN,
    input:
        logits=fit_logits,  # the inference's declared fit split
        taxonomy="data/shards/{dataset}/taxonomy.parquet",
    output:
        "results/models/{dataset}/{method}/{inference}.state",
    params:
        options=inference_options_json,
        shards=shards_dir,
        seed=PARAMS["seed"],
    log:
        "logs/fit_inference/{dataset}/{method}/{inference}.log",
    conda:
        "../../environment.yml"
    threads: train_threads
    resources:
        runtime=120,
        mem_mb=8000,
        cpus_per_task=job_threads,
    shell:
        "taxonbench fit-inference --inference {wildcards.inference} --logits {input.logits}"
        " --shards {params.shards} --options {params.options:q} --seed {params.seed} --threads {threads}"
        " --out {output} > {log} 2>&1"


rule infer:
    input:
        unpack(infer_inputs),
    output:
        scores="results/scores/{dataset}/{method}/{inference}/{split}.parquet",
        sidecar="results/scores/{dataset}/{method}/{inference}/{split}.json",
    params:
        shards=shards_dir,
        options=inference_options_json,
        state=state_argument,
    log:
        "logs/infer/{dataset}/{method}/{inference}/{split}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=60,
        mem_mb=8000,
        cpus_per_task=1,
    shell:
        "taxonbench infer --inference {wildcards.inference} --logits {input.logits}"
        " --shards {params.shards} --options {params.options:q} {params.state}"
        " --out {output.scores} > {log} 2>&1"
