rule infer:
    input:
        logits="results/logits/{dataset}/{method}/{split}.parquet",
        taxonomy="data/shards/{dataset}/taxonomy.parquet",
    output:
        scores="results/scores/{dataset}/{method}/{inference}/{split}.parquet",
        sidecar="results/scores/{dataset}/{method}/{inference}/{split}.json",
    params:
        shards=shards_dir,
    log:
        "logs/infer/{dataset}/{method}/{inference}/{split}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=60,
        mem_mb=8000,
    shell:
        "taxonbench infer --inference {wildcards.inference} --logits {input.logits}"
        " --shards {params.shards} --out {output.scores} > {log} 2>&1"
