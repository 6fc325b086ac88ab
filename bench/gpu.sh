#!/usr/bin/env bash
# GPU figures in one command (`make bench-gpu`): on a CUDA machine, check that training (AMP; cached and live video;
# online features) and inference run, then print training clips/s and peak memory per recipe, the inference
# real-time factor with live video, and a DDP run on every visible GPU. Sized for under 8 minutes on one GPU
# (not yet run on one).
#
#   bench/gpu.sh [--dry-run] [--keep]
#
# Without CUDA it exits 2 after one line saying so. --dry-run runs every step on the CPU at the smallest sizes (to
# check the script itself, not to measure anything); --keep leaves the work folder (data, runs, logs) in place.
# PYTHON picks the interpreter (default: .venv/bin/python when it exists, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
DRY=0
KEEP=0
for arg in "$@"; do
  case $arg in
    --dry-run) DRY=1 ;;
    --keep) KEEP=1 ;;
    *) echo "bench/gpu.sh: unknown argument $arg (use --dry-run or --keep)" >&2; exit 64 ;;
  esac
done

if [ $DRY = 0 ]; then
  GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null \
    || echo 0)
  if [ "$GPUS" = 0 ]; then
    echo "bench/gpu.sh: no CUDA device ($PY: torch.cuda.is_available() is False); run it on a machine with an NVIDIA GPU, or --dry-run" >&2
    exit 2
  fi
  DEVICE=cuda; STEPS=20; SECONDS_CLIP=10; INFER_S=60; TRAIN_STEPS=5
else
  GPUS=1
  DEVICE=cpu; STEPS=1; SECONDS_CLIP=2; INFER_S=4; TRAIN_STEPS=2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/av-seld-gpu.XXXXXX")
[ $KEEP = 1 ] || trap 'rm -rf "$WORK"' EXIT
LOG=$WORK/log.txt
started=$(date +%s)
AV="$PY -m av_seld"
step() { echo; echo "== $* ($(($(date +%s) - started)) s)"; }
fail() { echo "bench/gpu.sh: $1 failed; its output is in $LOG (kept)" >&2; trap - EXIT; exit 1; }
run() {  # run a command, its output to the log; on failure, its last lines and one line saying what failed
  local what=$1; shift
  if ! "$@" >>"$LOG" 2>&1; then tail -n 20 "$LOG" >&2; fail "$what"; fi
}

"$PY" - <<EOF
import torch
if "$DEVICE" == "cuda":
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}: {torch.cuda.device_count()} GPU(s): {names}")
else:
    print(f"torch {torch.__version__}: dry run on the CPU (nothing below is a GPU figure)")
EOF

step "data: 4 training and 2 validation clips of ${SECONDS_CLIP} s, FOA, 256x128 and 640x320 video"
run "synth-audio" $AV synth-audio "$WORK/data" --num-clips 4 --duration "$SECONDS_CLIP" --split dev-train-synth --seed 0
run "synth-audio" $AV synth-audio "$WORK/data" --num-clips 2 --duration "$SECONDS_CLIP" --split dev-val-synth --seed 1 --fold 2
for split in dev-train-synth dev-val-synth; do
  run "synth-video" $AV synth-video "$WORK/data" --split $split --size 640x320
done

# A few real training steps of each path through the trainer (AMP on CUDA is the recipes' default), then the
# run's own calibration and test scoring through the infer path.
ROOT="data.roots=[$WORK/data] data.train_splits=[dev-train-synth] data.val_splits=[dev-val-synth] data.test_splits=[dev-val-synth]"
TRAIN="train.device=$DEVICE train.max_steps=$TRAIN_STEPS train.epochs=20 train.out_dir=$WORK/runs data.batch_size=2"
check_train() {
  local name=$1 recipe=$2; shift 2
  local t0=$(date +%s)
  run "training check '$name'" $AV train "$recipe" $ROOT $TRAIN train.name="$name" "$@"
  echo "  ok  $name: $TRAIN_STEPS steps + calibration + test scoring in $(($(date +%s) - t0)) s"
}
step "training checks (real trainer, AMP on CUDA)"
check_train av_cached configs/demo.yaml                                  # cached visual features
check_train av_live configs/av_conformer.yaml data.video_size=[320,640]   # live frames through YOLO
check_train online_features configs/resnet_conformer.yaml data.online_features=true
check_train seldnet configs/seldnet_foa.yaml

step "inference check: av-seld infer with live video, stride 1 and 5"
run "infer" $AV infer "$WORK/runs/av_live/best.pt" --audio "$WORK/data/foa_dev/dev-val-synth" \
  --video "$WORK/data/video_dev/dev-val-synth" --out "$WORK/pred" --device "$DEVICE"
run "infer --visual-stride 5" $AV infer "$WORK/runs/av_live/best.pt" --audio "$WORK/data/foa_dev/dev-val-synth" \
  --video "$WORK/data/video_dev/dev-val-synth" --out "$WORK/pred5" --device "$DEVICE" --visual-stride 5
echo "  ok  $(ls "$WORK/pred" | wc -l) + $(ls "$WORK/pred5" | wc -l) prediction files"

step "training throughput and peak memory per recipe"
"$PY" bench/bench_train.py --device "$DEVICE" --steps "$STEPS" \
  $([ $DRY = 1 ] && echo "--recipes debug_tiny --batch 2") 2>>"$LOG" || fail "bench_train.py"

step "inference real-time factor (av_conformer, 640x320 live video, one ${INFER_S} s clip)"
"$PY" bench/bench_realtime.py --device "$DEVICE" --seconds "$INFER_S" --strides 1,5 --repeats 2 --skip-levers \
  $([ $DRY = 1 ] && echo "--config configs/demo.yaml") 2>>"$LOG" || fail "bench_realtime.py"

step "audio-visual training step, live frames against cached features (AMP)"
"$PY" bench/bench_av.py --device "$DEVICE" $([ $DRY = 1 ] && echo "--config configs/demo.yaml --batch 2 --seconds 1 --infer-seconds 2 --skip-live-train") \
  2>>"$LOG" || fail "bench_av.py"

step "DDP: resnet_conformer on $GPUS process(es)"
t0=$(date +%s)
if [ $DRY = 1 ]; then NPROC=2; else NPROC=$GPUS; fi
run "DDP training" "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m av_seld.cli train \
  configs/resnet_conformer.yaml $ROOT $TRAIN train.name=ddp
echo "  ok  $NPROC processes, $TRAIN_STEPS steps in $(($(date +%s) - t0)) s (start-up included); see $WORK/runs/ddp/train_log.csv"

echo
echo "bench/gpu.sh: all checks passed in $(($(date +%s) - started)) s$([ $DRY = 1 ] && echo ' (dry run on the CPU)')"
