"""LLaMA-Factory compatibility: its training YAML files and ``dataset_info.json``, read without torch.

``engine.lf.config`` turns a LLaMA-Factory training config into a tuitune run config, key by key;
``engine.lf.dataset_info`` resolves its dataset names into files our data layer reads.
"""
