# One command to set up and run each job; the virtual environment is created on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install facetrec with its dev tools

demo: $(STAMP)  ## the end-to-end job on synthetic data
	$(BIN)/facetrec demo
	@echo "serve it: $(BIN)/facetrec serve --bundle demo-output/bundle   (then open the address it prints)"

test: $(STAMP)  ## lint, then the test suite (real-data tests skip when the datasets are absent)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)  ## run the benchmarks and refresh benchmarks/results/ (hours on 2 cores)
	$(BIN)/python benchmarks/ingest_speed.py
	$(BIN)/python benchmarks/eval_speed.py
	$(BIN)/python benchmarks/ml100k_baselines.py
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/encode_throughput.py
	$(BIN)/python benchmarks/diversity.py
	$(BIN)/python benchmarks/rerank_latency.py
	$(BIN)/python benchmarks/durability.py --stores sqlite,postgresql
	$(BIN)/python benchmarks/request_cpu.py
	$(BIN)/python benchmarks/serve_load.py --stores sqlite,postgresql --workers 1,2 --rates 100,200 --duration 60
	$(BIN)/python benchmarks/facet.py --epochs 40 --datasets ml-100k --parts loo --models sasrec,sasrec-text,facet --seeds 0,1,2
	$(BIN)/python benchmarks/facet.py --epochs 40 --datasets amazon-magazines --parts loo --models sasrec,sasrec-text,facet,facet-k1 --seeds 0,1,2
	$(BIN)/python benchmarks/facet.py --epochs 40 --datasets ml-latest-small --parts loo --models sasrec,facet-sampled,sasrec-text,sasrec-text-sampled --seeds 0,1,2
	$(BIN)/python benchmarks/facet.py --epochs 40 --datasets amazon-magazines --parts loo --models facet-hard,facet-no-text,facet-no-id,facet-no-time,facet-no-events,facet-no-signals,facet-no-reviews
	$(BIN)/python benchmarks/facet.py --epochs 40 --datasets amazon-magazines --parts cold --models sasrec,sasrec-text,facet --seeds 0,1,2
	$(BIN)/python benchmarks/facet.py --epochs 40 --datasets ml-100k,synthetic --parts multi --models sasrec-text,facet,facet-k1,facet-future
	$(BIN)/python benchmarks/facet.py --epochs 40 --datasets synthetic --parts recovery --models facet,facet-hard
	$(BIN)/python benchmarks/public.py --seeds 0 --datasets beauty,ml-1m --models ease,itemknn,als
	$(BIN)/python benchmarks/public.py --seeds 0 --datasets sports,yelp --models itemknn,ease,als
	$(BIN)/python benchmarks/public.py --seeds 0 --datasets beauty --models sasrec --minutes 15 --patience 5
	$(BIN)/python benchmarks/public.py --seeds 0 --datasets beauty --models facet --minutes 18 --patience 5
	$(BIN)/python benchmarks/public.py --seeds 1,2 --datasets beauty --models sasrec --epochs 28 --patience 5 --minutes 1000
	$(BIN)/python benchmarks/public.py --seeds 1,2 --datasets beauty --models facet --epochs 17 --patience 5 --minutes 1000
	$(BIN)/python benchmarks/public.py --seeds 0 --datasets ml-1m --models sasrec --minutes 22 --patience 5
	$(BIN)/python benchmarks/public.py --seeds 0 --datasets ml-1m --models facet --minutes 20 --patience 5
	$(BIN)/python benchmarks/public.py --seeds 0 --datasets sports,yelp --models sasrec --minutes 9 --patience 5
	$(BIN)/python benchmarks/multimodal.py --datasets tiktok --parts standard --minutes 3
	$(BIN)/python benchmarks/multimodal.py --datasets tiktok --parts cold --minutes 3 --models ease,facet-id,facet-image,facet-audio,facet-image+audio,facet-attention,facet-gate
	$(BIN)/python benchmarks/multimodal.py --datasets amazon-magazines --parts standard,cold --minutes 3 --models ease,facet-id,facet-text,facet-text+reviews,facet-gated,facet-attention
	$(BIN)/python benchmarks/multimodal.py --datasets tiktok --parts standard --minutes 3 --seeds 1,2 --models facet-image+audio,facet-attention,facet-gated,facet-image
	$(BIN)/python benchmarks/fairness.py --datasets ml-1m,beauty --models ease,als
	$(BIN)/python benchmarks/scale.py --points 10000:100000,30000:300000,100000:1000000,1000000:10000000
	$(BIN)/python benchmarks/distributed.py --dataset ml-1m --epochs 3
	$(BIN)/python benchmarks/lm_tuning.py --datasets magazines --tunings frozen,lora,adalora,ia3,reranker --minutes 20

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
