#!/bin/bash
# Certify a trained checkpoint on several GPU nodes with torchrun under SLURM: one torchrun per node, one
# process per GPU; torchrun's c10d rendezvous runs on the first node of the allocation.
#
#   sbatch docs/slurm_certify.sh runs/cifar10 out/cifar10
#
#SBATCH --job-name=hiersmooth-certify
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
CHECKPOINT=${1:?usage: sbatch docs/slurm_certify.sh CHECKPOINT_DIR OUT_DIR}
OUT=${2:?usage: sbatch docs/slurm_certify.sh CHECKPOINT_DIR OUT_DIR}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export OMP_NUM_THREADS=8
# A rerun of the same job (same node and GPU counts) resumes from the per-rank checkpoints in $OUT.
srun torchrun \
    --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="$SLURM_GPUS_PER_NODE" \
    --rdzv_backend=c10d --rdzv_endpoint="$HEAD:29500" --rdzv_id="$SLURM_JOB_ID" \
    -m hiersmooth certify --checkpoint "$CHECKPOINT" --out "$OUT" --device cuda \
    --n0 1000 --num-samples 10000 --alpha 0.01 --batch-size 1000 --no-progress
