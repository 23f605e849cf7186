"""``OneThinkerSFTDataset``: verl's ``MultiTurnSFTDataset`` with working video, media root and budgets
(``data.custom_cls``).

verl 0.9.1's ``MultiTurnSFTDataset`` (``verl.utils.dataset.multiturn_sft_dataset``) hands each video to the
processor as bare frames: ``process_video`` drops the sampling metadata and ``apply_chat_template`` lets the
processor sample again, assuming 24 fps. Qwen3-VL then keeps 4 of 20 frames and ``__getitem__`` dies with an
IndexError in its position ids (computed with the Qwen2-VL ``get_rope_index`` for every model); Qwen2.5-VL
gets ``second_per_grid_ts`` 0.083 instead of 1.0, so its temporal positions are silently wrong. This class
replaces the three steps that cause it, keeping the rest of verl's class (file reading, sampling of
``max_samples``, system-prompt stripping, loss mask on assistant turns, padding modes):

- ``_build_messages``: each image / video item is resolved under ``data.media_root``, given the media budgets
  of the recipe (``data.image_max_pixels``, ``data.video_fps``, ``data.video_max_frames``,
  ``data.video_max_pixels``, ...; defaults: the reference SFT run, :data:`SFT_MEDIA_DEFAULTS`) and decoded
  with verl's ``process_image`` / ``process_video`` keeping the video metadata (real fps, frame indices);
- each turn goes through verl's ``build_multimodal_processor_inputs`` with that metadata and
  ``do_sample_frames=False`` -- the path verl's RL agent loop uses -- so the processor keeps the sampled
  frames, Qwen3-VL writes the true timestamps and Qwen2.5-VL gets the true seconds per temporal patch;
- position ids come from the model's own ``get_rope_index``, which verl's ``hf_processor`` binds to the
  processor (as the RL agent loop uses it; a processor loaded otherwise gets it through ``hf_processor`` from
  the same folder): text row plus three rotary rows, ``(4, seq_len)``.

Media that is missing at start-up is an error naming the rows, or, with ``data.skip_missing_media=true``,
dropped and counted (``skipped_missing_media``), as in the RL dataset; ``data.check_media_on_load`` chooses
the start-up check (``exists``, ``decode`` to also catch unreadable files, ``off``). A file that fails to
decode later is an error naming its row and path.
"""

import logging
import re

import torch
import torch.nn.functional as F
from verl.utils.dataset.dataset_utils import DatasetPadMode
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset
from verl.utils.dataset.vision_utils import process_image, process_video
from verl.utils.py_functional import convert_nested_value_to_list_recursive
from verl.utils.tokenizer.chat_template import apply_chat_template
from verl.utils.tokenizer.tokenizer import build_multimodal_processor_inputs

from onethinker_verl.data.corpus import RowRejected
from onethinker_verl.data.media import (
    MediaSettings,
    apply_video_reader_backend,
    check_media_file,
    check_mode_from_config,
    describe_row,
    media_root_from_config,
    resolve_media_path,
)
from onethinker_verl.sft.settings import SFT_MEDIA_DEFAULTS, stored_media_paths

logger = logging.getLogger(__name__)

_LISTED = 5  # rows named in a missing-media message; the rest are counted
_PLACEHOLDER = re.compile("(<image>|<video>)")
_MEDIA_TYPES = ("image", "video")


class OneThinkerSFTDataset(MultiTurnSFTDataset):
    def __init__(self, parquet_files, tokenizer, config, processor=None, max_samples: int = -1):
        config = config or {}
        self.media_root = media_root_from_config(config)
        self.media_settings = MediaSettings.from_config(config, SFT_MEDIA_DEFAULTS)
        self.skip_missing_media = bool(config.get("skip_missing_media", False))
        self.media_check = check_mode_from_config(config.get("check_media_on_load", "exists"))
        self.skipped_missing_media = 0
        apply_video_reader_backend(config)
        super().__init__(parquet_files, tokenizer, config, processor=processor, max_samples=max_samples)
        self._model_rope_index = self._find_model_rope_index()

    # ---- reading: verl's reader, then the start-up media check --------------------------------------------

    def _read_files_and_process(self):
        super()._read_files_and_process()
        if self.media_check != "off":
            self._drop_or_fail_on_missing_media()

    def _media_paths(self, raw_items) -> list[str]:
        return list(stored_media_paths(convert_nested_value_to_list_recursive(raw_items), self.media_root))

    def _drop_or_fail_on_missing_media(self) -> None:
        columns = [(key, modality) for key, modality in ((self.image_key, "image"), (self.video_key, "video"))
                   if key in self.dataframe.columns]
        if not columns:
            return
        column_values = {key: self.dataframe[key].tolist() for key, _ in columns}
        infos = self.dataframe["extra_info"].tolist() if "extra_info" in self.dataframe.columns else None
        keep, failed = [], []
        for position in range(len(self.dataframe)):
            try:
                for key, modality in columns:
                    for path in self._media_paths(column_values[key][position]):
                        check_media_file(path, modality, self.media_check)
            except RowRejected as rejection:
                info = infos[position] if infos is not None else None
                failed.append(f"row {describe_row(position, info)}: {rejection.reason}: {rejection.detail}")
            else:
                keep.append(position)
        if not failed:
            return
        listed = "; ".join(failed[:_LISTED]) + (f" (and {len(failed) - _LISTED} more rows)" if len(failed) > _LISTED else "")
        if not self.skip_missing_media:
            raise FileNotFoundError(
                f"{len(failed)} row(s) of {self.parquet_files} point at missing or unreadable media "
                f"(data.media_root={self.media_root}, data.check_media_on_load={self.media_check}): {listed}. "
                "Fix data.media_root, or set data.skip_missing_media=true to train without these rows."
            )
        self.skipped_missing_media = len(failed)
        logger.warning(
            "data.skip_missing_media: skipped %d of %d rows whose media are missing or unreadable: %s",
            len(failed), len(self.dataframe), listed,
        )
        self.dataframe = self.dataframe.iloc[keep]
        self.messages = [self.messages[i] for i in keep]
        if self.tools is not None:
            self.tools = [self.tools[i] for i in keep]
        if self.enable_thinking is not None:
            self.enable_thinking = [self.enable_thinking[i] for i in keep]

    # ---- media: resolved, budgeted, decoded with their metadata --------------------------------------------

    def _content_item(self, raw, modality: str) -> dict:
        """The qwen_vl_utils item for one stored image / video: stored settings, then the recipe's budgets."""
        stored = dict(raw) if isinstance(raw, dict) else {modality: raw}
        source = stored.pop(modality, None)
        if isinstance(source, list):
            resolved = [resolve_media_path(p, self.media_root) if isinstance(p, str) else p for p in source]
        elif isinstance(source, str):
            resolved = resolve_media_path(source, self.media_root)
        else:
            resolved = source
        budget = self.media_settings.image_item if modality == "image" else self.media_settings.video_item
        return {**{k: v for k, v in stored.items() if v is not None}, **budget(resolved)}

    def _decode(self, raw, modality: str, row_label: str):
        """A PIL image, or ``(frames, metadata)`` for a video; an error naming the row and file otherwise."""
        item = self._content_item(raw, modality)
        try:
            if modality == "image":
                return process_image(item, image_patch_size=self.image_patch_size)
            return process_video(item, image_patch_size=self.image_patch_size, return_video_metadata=True)
        except Exception as exc:  # any decoder failure: say which row and file
            raise ValueError(f"row {row_label}: cannot read {modality} {item.get(modality)!r}: {exc!r}") from exc

    def _build_messages(self, example: dict):
        """Messages whose ``<image>`` / ``<video>`` placeholders are content items holding the decoded media
        (a video item holds ``(frames, metadata)``)."""
        messages: list = convert_nested_value_to_list_recursive(example[self.messages_key])
        media = {
            "image": convert_nested_value_to_list_recursive(example.get(self.image_key)) or [],
            "video": convert_nested_value_to_list_recursive(example.get(self.video_key)) or [],
        }
        used = {"image": 0, "video": 0}
        row_label = describe_row(None, example.get("extra_info"))
        for message in messages:
            content = message["content"]
            if not isinstance(content, str) or self.processor is None:
                continue
            items = []
            for segment in filter(None, _PLACEHOLDER.split(content)):
                modality = segment[1:-1] if segment in ("<image>", "<video>") else None
                if modality is None:
                    items.append({"type": "text", "text": segment})
                    continue
                if used[modality] >= len(media[modality]):
                    raise ValueError(f"row {row_label}: more <{modality}> placeholders than {modality} files")
                decoded = self._decode(media[modality][used[modality]], modality, row_label)
                items.append({"type": modality, modality: decoded})
                used[modality] += 1
            message["content"] = items
        for modality in _MEDIA_TYPES:
            if used[modality] != len(media[modality]):
                raise ValueError(
                    f"row {row_label}: {used[modality]} <{modality}> placeholder(s) for {len(media[modality])} "
                    f"{modality} file(s)"
                )
        return messages

    # ---- one turn: rendered text + its media through the processor ------------------------------------------

    def _template_kwargs(self, enable_thinking) -> dict:
        kwargs = {**self.apply_chat_template_kwargs}
        if enable_thinking is not None:
            kwargs["enable_thinking"] = enable_thinking
        return kwargs

    def _render(self, messages: list, tools, enable_thinking) -> str:
        return apply_chat_template(
            self.processor if self.processor is not None else self.tokenizer,
            messages=messages,
            tools=tools,
            add_generation_prompt=False,
            tokenize=False,
            **self._template_kwargs(enable_thinking),
        )

    def _process_single_message(self, index, message, full_message, tools=None, enable_thinking=None):
        """Input ids, loss mask, attention mask and processor outputs of one turn (as verl's, but the media
        reach the processor with their sampling metadata)."""
        text = self._render([message], tools, enable_thinking)
        if self.processor is None:
            inputs = dict(self.tokenizer([text], add_special_tokens=False, return_tensors="pt"))
        else:
            images = [item["image"] for item in _items(message, "image")]
            videos = [item["video"] for item in _items(message, "video")]
            inputs = dict(
                build_multimodal_processor_inputs(
                    self.processor, text=[text], images=images or None, videos=videos or None
                )
            )
        input_ids = inputs.pop("input_ids")[0]
        attention_mask = inputs.pop("attention_mask")[0]
        if index != 0 and message["role"] != "system":
            input_ids = input_ids[len(self.system_prompt) :]
            attention_mask = attention_mask[len(self.system_prompt) :]
        loss_mask = torch.zeros_like(attention_mask)
        if message["role"] == "assistant":
            loss_mask[len(self.generation_prompt) :] = 1
        return input_ids, loss_mask, attention_mask, inputs

    def sanity_check(self, input_ids, messages, tools, enable_thinking):
        """verl's check that the turns, rendered one by one and joined, are the conversation rendered at once
        (templates such as Qwen3's thinking tags differ). Compared on the rendered text, before media
        expansion, so each row's media are processed once, not twice."""
        system_text = self.tokenizer.decode(self.system_prompt) if self.system_prompt else ""
        joined = []
        for index, message in enumerate(messages):
            text = self._render([message], tools if index == 0 else None, enable_thinking)
            if index != 0 and message["role"] != "system" and system_text and text.startswith(system_text):
                text = text[len(system_text) :]
            joined.append(text)
        if "".join(joined) == self._render(messages, tools, enable_thinking):
            return
        message = (
            "OneThinkerSFTDataset renders each turn separately; for this template that differs from rendering "
            "the whole conversation (e.g. Qwen thinking models add <think></think> to the last turn). Set "
            "data.ignore_input_ids_mismatch=true to train on the turn-by-turn rendering."
        )
        if not self.ignore_input_ids_mismatch:
            raise AssertionError(message)
        logger.warning(message)

    # ---- the row: tokens, masks, model position ids, padding --------------------------------------------------

    def _find_model_rope_index(self):
        """The model's own ``get_rope_index`` as verl binds it to the processor in ``hf_processor``; for a
        processor loaded otherwise, verl's ``hf_processor`` is asked for it from the same folder. None for
        processors without multimodal rotary positions."""
        if self.processor is None:
            return None
        bound = getattr(self.processor, "get_rope_index", None)
        if bound is not None or "Qwen2VLImageProcessor" not in type(self.processor.image_processor).__name__:
            return bound
        from verl.utils import hf_processor

        folder = getattr(self.processor.tokenizer, "name_or_path", None)
        bound = getattr(hf_processor(folder), "get_rope_index", None) if folder else None
        if bound is None:
            raise ValueError(
                f"{type(self.processor).__name__} has no get_rope_index and none could be loaded from {folder!r}: "
                "load the processor with verl.utils.hf_processor (it binds the model's get_rope_index)"
            )
        return bound

    def position_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, multi_modal_inputs: dict):
        """``(4, seq_len)`` for multimodal-rotary models (text positions, then the rows t, h, w of the model's own
        ``get_rope_index``), ``(seq_len,)`` otherwise."""
        if self._model_rope_index is None:
            return torch.arange(input_ids.shape[0], dtype=torch.long)
        token_types = torch.zeros_like(input_ids)
        token_types[input_ids == self.processor.image_token_id] = 1
        token_types[input_ids == self.processor.video_token_id] = 2
        grids = {key: multi_modal_inputs[key] for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts")
                 if key in multi_modal_inputs}
        rope, _ = self._model_rope_index(
            input_ids=input_ids.unsqueeze(0),
            mm_token_type_ids=token_types.unsqueeze(0),
            attention_mask=attention_mask.unsqueeze(0),
            **grids,
        )  # (3, 1, seq_len)
        text = torch.arange(input_ids.shape[0], dtype=torch.long).unsqueeze(0)
        return torch.cat((text, rope[:, 0].to(torch.long)), dim=0)

    def __getitem__(self, item):
        row: dict = self.dataframe.iloc[item].to_dict()
        messages = self._build_messages(row)
        tools = self.tools[item] if self.tools is not None else None
        enable_thinking = self.enable_thinking[item] if self.enable_thinking is not None else self.enable_thinking_default
        enable_thinking = None if enable_thinking is None else bool(enable_thinking)

        input_ids, loss_mask, attention_mask, multi_modal_inputs = [], [], [], {}
        for index, message in enumerate(messages):
            ids, mask, attention, inputs = self._process_single_message(
                index, message, messages, tools if index == 0 else None, enable_thinking
            )
            input_ids.append(ids)
            loss_mask.append(mask)
            attention_mask.append(attention)
            for key, value in inputs.items():
                if key != "mm_token_type_ids":  # position ids are computed here; the model does not need them
                    multi_modal_inputs.setdefault(key, []).append(torch.as_tensor(value))
        input_ids, loss_mask, attention_mask = torch.cat(input_ids), torch.cat(loss_mask), torch.cat(attention_mask)
        self.sanity_check(input_ids, messages, tools, enable_thinking)
        multi_modal_inputs = {key: torch.cat(values, dim=0) for key, values in multi_modal_inputs.items()}
        position_ids = self.position_ids(input_ids, attention_mask, multi_modal_inputs)
        return self._pad_or_fail(row, input_ids, attention_mask, loss_mask, position_ids, multi_modal_inputs)

    def _pad_or_fail(self, row, input_ids, attention_mask, loss_mask, position_ids, multi_modal_inputs) -> dict:
        """verl's padding modes. Over-long rows: truncation cuts through media tokens, so with media it is an
        error naming the row whatever ``data.truncation`` says."""
        length = input_ids.shape[0]
        if length > self.max_length and (self.truncation == "error" or multi_modal_inputs):
            raise ValueError(
                f"row {describe_row(None, row.get('extra_info'))}: {length} tokens exceed data.max_length="
                f"{self.max_length}" + (" (rows with media cannot be truncated)" if multi_modal_inputs else "")
            )
        if length > self.max_length:
            keep = slice(-self.max_length, None) if self.truncation == "left" else slice(0, self.max_length)
            input_ids, attention_mask, loss_mask = input_ids[keep], attention_mask[keep], loss_mask[keep]
            position_ids = position_ids[..., keep]
        result = {"input_ids": input_ids, "position_ids": position_ids, "loss_mask": loss_mask}
        if self.pad_mode == DatasetPadMode.RIGHT:
            pad = self.max_length - input_ids.shape[0]
            pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            result = {
                "input_ids": F.pad(input_ids, (0, pad), value=pad_id),
                "attention_mask": F.pad(attention_mask, (0, pad), value=0),
                "position_ids": F.pad(position_ids, (0, pad), value=0),
                "loss_mask": F.pad(loss_mask, (0, pad), value=0),
            }
        if multi_modal_inputs:
            result["multi_modal_inputs"] = multi_modal_inputs
        return result


def _items(message: dict, modality: str) -> list[dict]:
    content = message.get("content")
    return [item for item in content if item.get("type") == modality] if isinstance(content, list) else []


