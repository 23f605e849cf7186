"""Generation of one request with transformers: sampling, per-token log-probs, no vision pad tokens sampled.

What verl needs back is a ``TokenOutput(token_ids, log_probs, stop_reason, extra_fields)``
(``verl.workers.rollout.replica.TokenOutput``), as its vLLM server returns it.

* Sampling follows the request's settings (:mod:`.sampling`) through ``model.generate``: repetition penalty,
  temperature, top-k, top-p, then a draw from the request's own seed; temperature 0 is greedy.
* Log-probs are those of the model's distribution at the sampling temperature, ``log_softmax(logits / T)``
  over the whole vocabulary (T = 1 when greedy): what verl's actor recomputes for the same tokens.
* The vision placeholder tokens (``<|image_pad|>``, ``<|video_pad|>``, ``<|vision_start|>``,
  ``<|vision_end|>``) are never sampled: a response holding one breaks verl's
  ``AgentLoopWorker._compute_position_ids`` (the multimodal rotary index then looks for media that is not
  there), and a random or barely trained model does emit them. Their logits are set to -inf before sampling;
  the log-probs above stay the model's own.
"""

import logging
from typing import Any, Iterable, Optional

import torch

from onethinker_verl.rollout.multimodal import multimodal_model_inputs
from onethinker_verl.rollout.sampling import SamplingSettings

logger = logging.getLogger(__name__)

VISION_TOKEN_ATTRIBUTES = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


def vision_token_ids(model_config: Any, tokenizer: Any) -> list[int]:
    """Ids of the vision placeholder tokens, from the model config and the tokenizer's vocabulary."""
    ids = {getattr(model_config, name, None) for name in VISION_TOKEN_ATTRIBUTES}
    vocabulary = tokenizer.get_vocab() if tokenizer is not None else {}
    ids |= {vocabulary.get(token) for token in VISION_TOKENS}
    return sorted(int(token_id) for token_id in ids if token_id is not None)


def load_model(path: str, dtype: torch.dtype, device: str, trust_remote_code: bool = False) -> torch.nn.Module:
    """The checkpoint at ``path`` as a generation model (vision-language if it has a vision tower), in eval
    mode on ``device``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    model_class = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    model = model_class.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    return model.to(device).eval()


class HfGenerator:
    """One model answering one request at a time (callers serialise; the global RNG is reseeded per request)."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, processor: Any = None):
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor
        self.forbidden_token_ids = vision_token_ids(model.config, tokenizer)
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if tokenizer is not None and tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_token_ids = sorted(eos_ids)
        pad = tokenizer.pad_token_id if tokenizer is not None else None
        self.pad_token_id = pad if pad is not None else self.eos_token_ids[0]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(
        self,
        prompt_ids: list[int],
        settings: SamplingSettings,
        images: Optional[list[Any]] = None,
        videos: Optional[list[Any]] = None,
        mm_processor_kwargs: Optional[dict[str, Any]] = None,
    ):
        """Sample a response to ``prompt_ids``; returns verl's ``TokenOutput`` with one log-prob per token."""
        from transformers import GenerationConfig

        from verl.workers.rollout.replica import TokenOutput

        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        vision = multimodal_model_inputs(self.processor, self.tokenizer, input_ids, images, videos, mm_processor_kwargs)
        dtype = next(self.model.parameters()).dtype
        inputs = {
            key: value.to(self.device, dtype=dtype if value.is_floating_point() else value.dtype)
            for key, value in vision.items()
        }
        input_ids = input_ids.to(self.device)
        sample = settings.temperature > 0
        sampling = (
            dict(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
            if sample
            else {}
        )
        generation_config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=sample,
            repetition_penalty=settings.repetition_penalty,
            suppress_tokens=self.forbidden_token_ids or None,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
            **sampling,
        )
        torch.manual_seed(settings.seed)
        with torch.no_grad():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=generation_config,
                **inputs,
            )
        token_ids = output.sequences[0, input_ids.shape[1]:]
        logits = torch.stack(output.logits, dim=1)[0, : len(token_ids)].float()
        temperature = settings.temperature if sample else 1.0
        log_probs = torch.log_softmax(logits / temperature, dim=-1).gather(-1, token_ids[:, None])[:, 0]
        tokens = token_ids.tolist()
        stop_reason = "completed" if tokens and tokens[-1] in self.eos_token_ids else "length"
        return TokenOutput(token_ids=tokens, log_probs=log_probs.tolist(), stop_reason=stop_reason)

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy ``(name, tensor)`` pairs (the model's own parameter / buffer names) into the model; returns how
        many were copied. A name the model does not have is an error, so a renamed layer cannot go unsynced."""
        targets = dict(self.model.named_parameters())
        targets.update(self.model.named_buffers())
        unknown, copied = [], 0
        with torch.no_grad():
            for name, tensor in named_tensors:
                target = targets.get(name)
                if target is None:
                    unknown.append(name)
                    continue
                if target.shape != tensor.shape:
                    raise ValueError(f"weight {name}: shape {tuple(tensor.shape)} does not fit {tuple(target.shape)}")
                target.copy_(tensor.to(device=target.device, dtype=target.dtype))
                copied += 1
        if unknown:
            raise KeyError(f"{len(unknown)} weights the rollout model does not have, e.g. {unknown[:3]}")
        return copied
