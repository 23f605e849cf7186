"""The hf rollout backend (onethinker_verl/rollout/): found through verl's own registries, sampling with the
request's settings, log-probs equal to a forward pass, vision pad tokens never sampled, errors that fail the
request instead of hanging, per-request seeds. No Ray: the server class is driven directly."""

import asyncio
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="module")
def family_generator(tiny_vl_checkpoint):
    from transformers import AutoProcessor, AutoTokenizer

    from onethinker_verl.rollout.generator import HfGenerator, load_model

    built = {}

    def generator(family="qwen3_vl"):
        if family not in built:
            path = tiny_vl_checkpoint(family)
            built[family] = HfGenerator(
                load_model(str(path), torch.float32, "cpu"), AutoTokenizer.from_pretrained(path),
                AutoProcessor.from_pretrained(path),
            )
        return built[family]

    return generator


def rollout_config(**overrides):
    values = dict(
        seed=1, prompt_length=256, response_length=12, max_model_len=None, temperature=1.0, top_p=1.0, top_k=-1,
        repetition_penalty=1.0, free_cache_engine=True,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


def image_prompt(generator, question="What is shown in the image?"):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = generator.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = generator.processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
    return ids, [image]


def video_prompt(generator):
    """A 4-frame video with verl's (frames, metadata) shape; the prompt expanded by the real processor."""
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (4, 3, 64, 64), dtype=np.uint8))
    metadata = {"fps": 2.0, "frames_indices": [0, 1, 2, 3], "total_num_frames": 4, "duration": 2.0}
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe the video."}]}]
    text = generator.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = generator.processor(
        text=[text], videos=[frames], video_metadata=[metadata], do_sample_frames=False, return_tensors="pt"
    )
    return inputs["input_ids"][0].tolist(), [(frames, metadata)]


def settings(**overrides):
    from onethinker_verl.rollout.sampling import SamplingSettings

    values = dict(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_new_tokens=10, seed=5)
    values.update(overrides)
    return SamplingSettings(**values)


def forward_log_probs(generator, prompt_ids, response_ids, temperature, images=None, videos=None):
    """The actor's view: one forward pass over prompt + response, log_softmax(logits / T) of each response token."""
    from onethinker_verl.rollout.multimodal import multimodal_model_inputs

    ids = torch.tensor([prompt_ids + response_ids])
    vision = multimodal_model_inputs(generator.processor, generator.tokenizer, ids, images, videos)
    with torch.no_grad():
        logits = generator.model(input_ids=ids, attention_mask=torch.ones_like(ids), **vision).logits[0]
    logits = logits[len(prompt_ids) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(response_ids)[:, None])[:, 0]


def next_token_probs(generator, prompt_ids, images):
    from onethinker_verl.rollout.multimodal import multimodal_model_inputs

    ids = torch.tensor([prompt_ids])
    vision = multimodal_model_inputs(generator.processor, generator.tokenizer, ids, images)
    with torch.no_grad():
        return torch.softmax(generator.model(input_ids=ids, **vision).logits[0, -1].float(), -1)


def test_verl_registries_find_the_backend():
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class

    from onethinker_verl.rollout.adapter import HfRolloutAdapter
    from onethinker_verl.rollout.replica import HfReplica

    assert get_rollout_class("hf", "async") is HfRolloutAdapter
    assert get_rollout_replica_class("hf") is HfReplica


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl", "qwen2_vl"])
def test_log_probs_match_a_forward_pass_on_an_image_prompt(family_generator, family):
    generator = family_generator(family)
    prompt_ids, images = image_prompt(generator)
    output = generator.generate(prompt_ids, settings(temperature=0.7, max_new_tokens=8), images=images)
    assert len(output.token_ids) == len(output.log_probs) == 8 and output.stop_reason == "length"
    expected = forward_log_probs(generator, prompt_ids, output.token_ids, 0.7, images=images)
    assert torch.allclose(torch.tensor(output.log_probs), expected, atol=1e-4)


def test_log_probs_match_a_forward_pass_on_a_qwen3_vl_video_with_timestamps(family_generator):
    generator = family_generator("qwen3_vl")
    prompt_ids, videos = video_prompt(generator)
    assert generator.tokenizer.decode(prompt_ids).count("seconds>") == 2  # placeholder runs split by timestamps
    output = generator.generate(prompt_ids, settings(max_new_tokens=6), videos=videos)
    expected = forward_log_probs(generator, prompt_ids, output.token_ids, 1.0, videos=videos)
    assert torch.allclose(torch.tensor(output.log_probs), expected, atol=1e-4)


def test_greedy_and_top_k_one_take_the_arg_max(family_generator):
    generator = family_generator()
    prompt_ids, images = image_prompt(generator)
    greedy = generator.generate(prompt_ids, settings(temperature=0.0, max_new_tokens=6), images=images)
    top_one = generator.generate(prompt_ids, settings(top_k=1, seed=99, max_new_tokens=6), images=images)
    assert greedy.token_ids == top_one.token_ids
    # each greedy token is the arg-max of the forward pass, with the vision tokens left out
    ids = torch.tensor([prompt_ids + greedy.token_ids])
    from onethinker_verl.rollout.multimodal import multimodal_model_inputs

    with torch.no_grad():
        logits = generator.model(
            input_ids=ids, attention_mask=torch.ones_like(ids),
            **multimodal_model_inputs(generator.processor, generator.tokenizer, ids, images),
        ).logits[0, len(prompt_ids) - 1 : -1]
    logits[:, generator.forbidden_token_ids] = -float("inf")
    assert logits.argmax(-1).tolist() == greedy.token_ids


def test_sampling_settings_shape_the_draw(family_generator):
    generator = family_generator()
    prompt_ids, images = image_prompt(generator)
    same = [generator.generate(prompt_ids, settings(seed=7), images=images).token_ids for _ in range(2)]
    assert same[0] == same[1]  # a seed fixes the draw
    others = {tuple(generator.generate(prompt_ids, settings(seed=s), images=images).token_ids) for s in range(4)}
    assert len(others) > 1  # different seeds, different draws
    # top-p this small leaves only the most likely token: greedy again
    greedy = generator.generate(prompt_ids, settings(temperature=0.0, max_new_tokens=10), images=images)
    assert generator.generate(prompt_ids, settings(top_p=1e-6, seed=3), images=images).token_ids == greedy.token_ids
    # top-k = 3: every token is among the 3 most likely (vision tokens excluded) at its position
    output = generator.generate(prompt_ids, settings(top_k=3, seed=11, max_new_tokens=6), images=images)
    expected = forward_log_probs(generator, prompt_ids, output.token_ids, 1.0, images=images)
    ids = torch.tensor([prompt_ids + output.token_ids])
    from onethinker_verl.rollout.multimodal import multimodal_model_inputs

    with torch.no_grad():
        logits = generator.model(
            input_ids=ids, attention_mask=torch.ones_like(ids),
            **multimodal_model_inputs(generator.processor, generator.tokenizer, ids, images),
        ).logits[0, len(prompt_ids) - 1 : -1]
    logits[:, generator.forbidden_token_ids] = -float("inf")
    top3 = logits.topk(3, -1).indices
    assert all(token in top3[i].tolist() for i, token in enumerate(output.token_ids))
    assert torch.allclose(torch.tensor(output.log_probs), expected, atol=1e-4)  # the model's log-probs, not truncated


def test_response_length_and_eos_end_a_response(family_generator):
    from onethinker_verl.rollout.sampling import sampling_settings

    generator = family_generator()
    prompt_ids, images = image_prompt(generator)
    config = rollout_config(response_length=5)
    assert sampling_settings({}, config, len(prompt_ids), 0).max_new_tokens == 5
    assert sampling_settings({"max_tokens": 3}, config, len(prompt_ids), 0).max_new_tokens == 3
    assert sampling_settings({}, rollout_config(max_model_len=len(prompt_ids) + 2), len(prompt_ids), 0).max_new_tokens == 2
    with pytest.raises(ValueError, match="leaves no room"):
        sampling_settings({}, rollout_config(max_model_len=len(prompt_ids)), len(prompt_ids), 0)
    # an eos-loving model stops at once with "completed"
    eos = generator.eos_token_ids[0]
    with favouring(generator, [eos]):
        output = generator.generate(prompt_ids, settings(temperature=0.0), images=images)
    assert output.token_ids == [eos] and output.stop_reason == "completed"


def test_vision_pad_tokens_are_never_sampled(family_generator):
    generator = family_generator()
    prompt_ids, images = image_prompt(generator)
    pad = generator.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert pad in generator.forbidden_token_ids
    with favouring(generator, generator.forbidden_token_ids):  # every vision token far more likely than the rest
        assert next_token_probs(generator, prompt_ids, images)[pad] > 0.1  # the model wants a pad token next (of 4)
        output = generator.generate(prompt_ids, settings(max_new_tokens=12, seed=4), images=images)
    assert len(output.token_ids) == 12
    assert not set(output.token_ids) & set(generator.forbidden_token_ids)


@contextmanager
def favouring(generator, token_ids, boost=30.0):
    """Add ``boost`` to the output logits of ``token_ids`` while inside (a forward hook on the LM head)."""
    def hook(module, inputs, output):
        output[..., token_ids] += boost
        return output

    handle = generator.model.get_output_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def server(generator, **config):
    from onethinker_verl.rollout.server import HfServer

    instance = HfServer(config=rollout_config(**config), model_config=None, replica_rank=0)
    instance.generator = generator
    return instance


def test_copies_of_a_prompt_get_distinct_seeds_and_a_new_round_repeats_them(family_generator):
    generator = family_generator()
    prompt_ids, images = image_prompt(generator)
    instance = server(generator)
    params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True}

    async def one_round():
        outputs = await asyncio.gather(
            *[instance.generate(f"r{i}", prompt_ids=prompt_ids, sampling_params=dict(params), image_data=images)
              for i in range(4)]
        )
        await instance.sleep()  # verl ends a sampling round by putting the replica to sleep
        return [tuple(output.token_ids) for output in outputs]

    async def two_rounds():
        return await one_round(), await one_round()

    first, second = asyncio.run(two_rounds())
    assert len(set(first)) == 4  # the n copies of a prompt are different samples
    assert first == second  # ... and the same ones in every round with the same weights
    other_seed = server(generator, seed=2)
    assert asyncio.run(
        other_seed.generate("x", prompt_ids=prompt_ids, sampling_params=dict(params), image_data=images)
    ).token_ids != list(first[0])


@pytest.mark.parametrize("exception", [StopIteration(), ValueError("bad pixels")])
def test_an_error_inside_generation_fails_the_request_and_nothing_hangs(family_generator, exception):
    generator = family_generator()
    prompt_ids, images = image_prompt(generator)
    instance = server(generator)

    def broken(*args, **kwargs):
        raise exception

    async def failing_then_working():
        instance.generator = SimpleNamespace(generate=broken)
        call = instance.generate("req-7", prompt_ids=prompt_ids, sampling_params={"temperature": 1.0}, image_data=images)
        with pytest.raises(RuntimeError, match=rf"^hf rollout: request req-7 failed: {type(exception).__name__}"):
            await asyncio.wait_for(call, timeout=30)
        instance.generator = generator  # the server still answers the next request
        call = instance.generate("req-8", prompt_ids=prompt_ids, sampling_params={"temperature": 1.0}, image_data=images)
        return await asyncio.wait_for(call, timeout=60)

    assert asyncio.run(failing_then_working()).token_ids


def test_weights_reach_the_generator_by_name_and_unknown_names_are_refused(family_generator):
    generator = family_generator()
    name, parameter = next(iter(generator.model.named_parameters()))
    saved = parameter.detach().clone()
    try:
        assert generator.load_weights([(name, torch.zeros_like(saved))]) == 1
        assert torch.count_nonzero(parameter) == 0
    finally:
        generator.load_weights([(name, saved)])
    with pytest.raises(KeyError, match="does not have"):
        generator.load_weights([("model.not_a_layer.weight", saved)])


def test_tensor_parallel_hf_rollout_is_refused_in_one_line():
    from onethinker_verl.rollout.checks import hf_rollout_problems

    assert hf_rollout_problems({"name": "hf", "tensor_model_parallel_size": 1}) == []
    assert hf_rollout_problems({"name": "vllm", "tensor_model_parallel_size": 4}) == []
    (line,) = hf_rollout_problems({"name": "hf", "tensor_model_parallel_size": 2})
    assert "actor_rollout_ref.rollout.tensor_model_parallel_size=2" in line and "\n" not in line
