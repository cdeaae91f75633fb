"""Export a trained policy as a plain transformers folder that loads anywhere (transformers, vLLM, TGI).

Recipes train policies with LoRA on CPU; users load them with ``AutoModelForCausalLM.from_pretrained``.
:func:`save_policy` merges LoRA adapters into the weights, leaves PPO's value head out (``PPOTrainer``
never saves it with the policy), writes safetensors plus the tokenizer, and a separate critic, if the
trainer has one, beside the policy in ``value_model/`` (a model folder of its own).
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def _sharded(trainer) -> bool:
    """True when parameters live in shards across ranks (ZeRO-3, FSDP): merging LoRA needs them whole."""
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and getattr(plugin, "zero_stage", 0) == 3


def save_policy(trainer, tokenizer, output_dir: str | None = None) -> str:
    """Save ``trainer``'s policy to ``output_dir`` (default ``args.output_dir``); returns the folder.

    A PEFT model is merged and saved as a full model; PPO's value head stays out, a separate critic is saved
    in ``value_model/``. Under ZeRO-3 / FSDP the weights are sharded, so the folder is written by
    ``trainer.save_model`` instead (which gathers them; a PEFT model is then saved as its adapter, and PPO adds
    its ``value_head/`` or ``value_model/``) and a log line says so. Call it on every process.
    """
    from peft import PeftModel

    from .critic import save_value_model

    output_dir = output_dir or trainer.args.output_dir
    if _sharded(trainer):
        # Only the trainer can gather sharded weights; a PEFT model is then saved as its adapter.
        logger.warning("Sharded training (ZeRO-3/FSDP): saving through trainer.save_model to %s.", output_dir)
        trainer.save_model(output_dir)
    else:
        trainer.accelerator.wait_for_everyone()
        if trainer.accelerator.is_main_process:
            model = trainer.accelerator.unwrap_model(trainer.model)
            if isinstance(model, PeftModel):
                model = model.merge_and_unload()
            model.save_pretrained(output_dir, safe_serialization=True)  # the value head / critic stays out
            save_value_model(model, output_dir)  # a separate critic goes beside it, in value_model/
    if trainer.accelerator.is_main_process:
        os.makedirs(output_dir, exist_ok=True)
        tokenizer.save_pretrained(output_dir)
    return output_dir
