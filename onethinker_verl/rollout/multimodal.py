"""Images and videos of a request as model inputs, built the way verl's agent loop builds them for the actor.

Wraps ``verl.experimental.agent_loop.agent_loop.AgentLoopWorker._compute_multi_modal_inputs``: the actor's
log-probs are recomputed from exactly those tensors (``pixel_values``, ``image_grid_thw``,
``pixel_values_videos``, ``video_grid_thw``, ...), so the rollout must generate from the same ones. verl's
function is called as it stands (videos keep their timing metadata), with the request's prompt token ids as
the model's ``input_ids``: the processor is never run on the prompt text to tokenize it again, which would
break Qwen3-VL videos, whose placeholder runs are split by timestamps.

``mm_token_type_ids`` (image 1, video 2, text 0), which transformers >= 5.3 needs for multimodal rotary
positions, is derived from the prompt's own placeholder tokens, as verl's ``_compute_position_ids`` does.
"""

from types import SimpleNamespace
from typing import Any, Optional

import torch


def multimodal_model_inputs(
    processor: Any,
    tokenizer: Any,
    prompt_ids: torch.Tensor,
    images: Optional[list[Any]] = None,
    videos: Optional[list[Any]] = None,
    mm_processor_kwargs: Optional[dict[str, Any]] = None,
) -> dict[str, torch.Tensor]:
    """Vision tensors for ``prompt_ids`` (shape (1, prompt length)); empty for a text-only request or a model
    without a processor."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.utils.tokenizer import get_processor_token_id

    if processor is None or (not images and not videos):
        return {}
    worker = SimpleNamespace(processor=processor, tokenizer=tokenizer, mm_processor_kwargs=None)
    worker._get_mm_processor_kwargs = lambda audios=None: AgentLoopWorker._get_mm_processor_kwargs(worker, audios)
    output = SimpleNamespace(
        multi_modal_data={"images": images or None, "videos": videos or None},
        mm_processor_kwargs=mm_processor_kwargs or None,
    )
    inputs = AgentLoopWorker._compute_multi_modal_inputs(worker, output, prompt_ids)
    # verl adds this for its packed (remove-padding) attention; the model's own forward does not take it
    inputs.pop("images_seqlens", None)
    if inputs.pop("mm_token_type_ids", None) is not None:
        token_types = torch.zeros_like(prompt_ids)
        for kind, value in (("image", 1), ("video", 2)):
            token_id = get_processor_token_id(processor, kind)
            if token_id is not None:
                token_types[prompt_ids == token_id] = value
        inputs["mm_token_type_ids"] = token_types
    return inputs
