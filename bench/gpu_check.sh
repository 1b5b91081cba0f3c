#!/usr/bin/env bash
# One GPU check of the training engine (steps 1-4 under 8 minutes on one recent GPU, the scale table of step 5
# at most SCALE_BUDGET_S (default 1200 s) more; nothing downloaded).
#
#     bash bench/gpu_check.sh                      # from the repository root, with the project's virtualenv
#     GPU_CHECK_DEVICE=cpu bash bench/gpu_check.sh # a dry run of the script itself on CPU (a 2-layer model
#                                                  # of the same architecture, fp32, a few steps), no GPU needed
#
# A GPU server may have no network and no model files, so the model is a random-initialised
# Qwen2.5-0.5B (its real architecture: 24 layers, hidden 896, 14 heads, 2 key/value heads, MLP 4864,
# vocabulary 151,936, tied embeddings) built from its config, with the embedded demo model's
# tokenizer (ids below 49,152 are valid ids of the larger vocabulary). It checks, in order:
#   1. CUDA LoRA in bf16 with the defaults (padding-free batches, fused LoRA dropout, chunked loss,
#      Liger's kernel when installed): the run finishes, the loss falls, peak CUDA memory is reported;
#   2. the padding-free path on CUDA: one batch's loss and adapter gradients equal the padded batch's
#      (bf16: within bf16 rounding), and a record's logits do not change when another record packed
#      before it changes;
#   3. QLoRA 4-bit (bitsandbytes NF4) with the defaults: the run finishes;
#   4. the speed bench on this model: tuitune against a plain Trainer with and without gradient
#      checkpointing, per-step losses compared (bench/bench_speed.py --model);
#   5. the scale table (bench/bench_scale.py): tokens/s and peak memory of the reference and of
#      `tuitune train` at cutoff 256-2048, LoRA and QLoRA, for Qwen2.5-0.5B and -1.5B (random weights).
#      Alone, within one 10-minute call (the budget stops starting cases; the table keeps what ran):
#      GPU_CHECK_SCALE_ONLY=1 SCALE_BUDGET_S=400 SCALE_TIMEOUT_S=570 bash bench/gpu_check.sh
# Every step prints PASS or FAIL; the exit status is the number of failures.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
WORK=$(mktemp -d /tmp/gpu-check-XXXXXX)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TUITUNE_RUNS_DIR="$WORK/runs"
FAILS=0
DEVICE=${GPU_CHECK_DEVICE:-cuda}
if [ "$DEVICE" = cuda ]; then
    LAYERS=24 HIDDEN=896 HEADS=14 MLP=4864 STEPS_LORA=40 STEPS_QLORA=20 STEPS_BENCH=20 MEMORY=cuda
else
    LAYERS=2 HIDDEN=64 HEADS=2 MLP=128 STEPS_LORA=6 STEPS_QLORA=3 STEPS_BENCH=3 MEMORY=rss
fi
export DEVICE LAYERS HIDDEN HEADS MLP MEMORY
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }
step() { echo; echo "== $1 ($(date +%T))"; }

step "environment"
[ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" - <<'EOF' || { echo "FAIL no CUDA"; exit 99; }
import os, torch, transformers, peft
assert torch.cuda.is_available() or os.environ["DEVICE"] == "cpu", "torch sees no GPU"
print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__,
      "peft", peft.__version__, "bf16", torch.cuda.is_bf16_supported(including_emulation=False))
for name in ("bitsandbytes", "liger_kernel", "flash_attn"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "installed"))
    except Exception as exc:
        print(name, "not available:", type(exc).__name__)
EOF

step "build a random Qwen2.5-0.5B ($LAYERS layers, hidden $HIDDEN)"
"$PY" - "$WORK/model" <<'EOF' || { echo "FAIL model build"; exit 98; }
import os, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config
from engine.models.demo import ensure_demo_model
size = {k: int(os.environ[k]) for k in ("LAYERS", "HIDDEN", "HEADS", "MLP")}
config = Qwen2Config(vocab_size=151936, hidden_size=size["HIDDEN"], intermediate_size=size["MLP"],
                     num_hidden_layers=size["LAYERS"], num_attention_heads=size["HEADS"], num_key_value_heads=2,
                     max_position_embeddings=32768,
                     rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu")
tokenizer = AutoTokenizer.from_pretrained(ensure_demo_model())
config.bos_token_id, config.eos_token_id, config.pad_token_id = (tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                                 tokenizer.pad_token_id)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if os.environ["DEVICE"] == "cuda" else torch.float32)
model.save_pretrained(sys.argv[1])
tokenizer.save_pretrained(sys.argv[1])
print(f"{model.num_parameters() / 1e6:.0f}M parameters in {sys.argv[1]}")
EOF

"$PY" -c "
import json, sys
sys.path.insert(0, 'bench')
from bench_speed import records
with open('$WORK/data.jsonl', 'w') as out:
    out.writelines(json.dumps(r) + '\n' for r in records())
"

run_engine() {  # NAME STEPS EXTRA-YAML: a run through the supervisor; prints its last events
    local dir="$WORK/runs/$1"
    mkdir -p "$dir"
    cat > "$dir/config.yaml" <<YAML
model: {name_or_path: $WORK/model}
data: {train: [$WORK/data.jsonl], cutoff_len: 512}
train: {max_steps: $2, batch_size: 8, learning_rate: 2.0e-3, logging_steps: 5, save_steps: 1000, warmup_ratio: 0.0}
$3
YAML
    timeout 300 "$PY" -m engine launch --run-dir "$dir" > "$dir/engine.log" 2>&1  # as the app starts it
    "$PY" - "$dir" <<'EOF'
import os, sys
from engine.protocol import read_events
events = read_events(sys.argv[1])
logs = [e for e in events if e["type"] == "log"]
last = events[-1] if events else {}
for e in logs:
    print(f"  step {e['step']}: loss {e['loss']:.4f}, {e.get('tokens_per_s', 0):.0f} tokens/s")
print("  end:", {k: last.get(k) for k in ("type", "cause", "peak_memory_bytes", "peak_memory_kind")})
ok = last.get("type") == "run_finished" and last.get("peak_memory_kind") == os.environ["MEMORY"]
ok = ok and len(logs) >= 2 and logs[-1]["loss"] < logs[0]["loss"]
sys.exit(0 if ok else 1)
EOF
}

if [ -z "${GPU_CHECK_SCALE_ONLY:-}" ]; then
step "1. LoRA on $DEVICE (bf16 on CUDA), default techniques"
if run_engine lora "$STEPS_LORA" ""; then pass "LoRA"; else fail "LoRA (see $WORK/runs/lora/engine.log)"; fi
grep -h "techniques:" "$WORK/runs/lora/engine.log" | tail -1

step "2. padding-free path on $DEVICE"
if "$PY" - "$WORK/model" <<'EOF'; then pass "padding-free"; else fail "padding-free"; fi
import os, sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from engine.recipes.datasets import FlatCollator, PadCollator
device = os.environ["DEVICE"]
dtype = torch.bfloat16 if device == "cuda" else torch.float32  # bf16 on this kind of CPU needs oneDNN flags
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=dtype).to(device)
model.config.use_cache = False
model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules="all-linear",
                                         init_lora_weights=False)).train()
g = torch.Generator().manual_seed(0)
feats = []
for n in (100, 37, 220, 64):
    ids = torch.randint(3, 40000, (n,), generator=g).tolist()
    feats.append({"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2:]})
def step(batch):
    model.zero_grad()
    batch = {k: v.to(device) for k, v in batch.items()}
    count = (batch["labels"][..., 1:] != -100).sum()
    with torch.autocast(device, dtype=dtype, enabled=device == "cuda"):
        loss = model(**batch, num_items_in_batch=count).loss
    loss.backward()
    return loss.item(), torch.cat([p.grad.float().flatten() for p in model.parameters() if p.requires_grad])
(a, ga), (b, gb) = step(PadCollator(0)(feats)), step(FlatCollator()(feats))
cos = torch.nn.functional.cosine_similarity(ga, gb, dim=0).item()
print(f"  loss padded {a:.5f} padding-free {b:.5f}; gradient cosine {cos:.5f}")
flat = FlatCollator()(feats[:2])
other = FlatCollator()([{"input_ids": [(t * 7) % 40000 + 3 for t in feats[0]["input_ids"]], "labels": feats[0]["labels"]}, feats[1]])
with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=device == "cuda"):
    la = model(input_ids=flat["input_ids"].to(device), position_ids=flat["position_ids"].to(device)).logits[0, 100:]
    lb = model(input_ids=other["input_ids"].to(device), position_ids=other["position_ids"].to(device)).logits[0, 100:]
leak = (la - lb).abs().max().item()
print(f"  record B's logits move by {leak:.2e} when record A changes")
sys.exit(0 if abs(a - b) < 0.02 * abs(a) and cos > 0.99 and leak < 1e-2 else 1)
EOF

step "3. QLoRA 4-bit, default techniques"
if run_engine qlora "$STEPS_QLORA" "quant: {mode: 4bit}"; then pass "QLoRA 4-bit"; else fail "QLoRA 4-bit (see $WORK/runs/qlora/engine.log)"; fi

step "4. speed bench on this model"
if timeout 330 "$PY" bench/bench_speed.py --model "$WORK/model" --steps "$STEPS_BENCH" 2>&1 | tee "$WORK/bench.txt"; then
    pass "speed bench (figures above; targets: >= 1.5x reference, <= 1.0x memory, >= 1.0x plain)"
else
    fail "speed bench"
fi

fi  # steps 1-4

step "5. scale table: Qwen2.5-0.5B and -1.5B (random weights), LoRA and QLoRA, cutoff 256 to 2048"
# bench/bench_scale.py starts no new case after SCALE_BUDGET_S and writes what ran (table, JSON, image), so a
# slow GPU gives a partial table rather than a killed bench (a killed one would leave detached trainers).
if [ "$DEVICE" = cuda ]; then
    SCALE_ARGS=(--models qwen2.5-0.5b,qwen2.5-1.5b --methods lora,qlora --cutoffs 256,512,1024,2048 --steps 10)
else  # the dry run checks the script on the smallest case only
    SCALE_ARGS=(--models smollm2 --methods lora --cutoffs 256 --steps 2)
fi
if timeout "${SCALE_TIMEOUT_S:-1500}" "$PY" bench/bench_scale.py "${SCALE_ARGS[@]}" --out "$WORK/scale" \
        --models-dir "$WORK/scale-models" --budget-s "${SCALE_BUDGET_S:-1200}" 2>&1 | tee "$WORK/scale.txt"; then
    pass "scale table ($WORK/scale/scale.md, scale.png; set against Unsloth's 2x over HF+FA2 at -70% VRAM and
     LLaMA-Factory's wiki, LLaMA2-7B at 1024 tokens: 2,954 tok/s with FA2 at 17 GB, 4,007 with Unsloth at 16 GB)"
else
    fail "scale table (see $WORK/scale.txt)"
fi
rm -rf "$WORK/scale-models"  # several GB of random weights

echo
echo "gpu_check: $FAILS failure(s); work folder $WORK"
exit "$FAILS"
