"""A transformers ("hf") rollout backend for verl 0.9.1: ``actor_rollout_ref.rollout.name=hf``.

verl 0.9.1 generates only through vLLM, SGLang or TRT-LLM; its ``hf_rollout.py`` and ``naive`` rollouts are in
neither of its registries and cannot be instantiated. This backend generates with ``model.generate`` of
transformers, so a run works on CPU and on a GPU without vLLM. It is for proving a loop end to end and for
debugging, not for throughput: requests are served one at a time; use vLLM for real runs.

The pieces, each bridging one gap:

* :mod:`.registration` puts the backend into verl's two registries (``get_rollout_class``'s
  ``_ROLLOUT_REGISTRY`` and ``RolloutReplicaRegistry``), from the plugin's lazy table;
* :mod:`.replica` is the ``RolloutReplica`` that starts one generation server per replica;
* :mod:`.server` is that server (a Ray actor): the agent loop's ``generate`` call, wake/sleep, weights;
* :mod:`.adapter` is the worker-side ``BaseRollout`` that verl's ``naive`` checkpoint engine path calls with
  the actor's weights after every update;
* :mod:`.generator` is the generation itself (sampling, log-probs, vision pad tokens never sampled);
* :mod:`.multimodal` builds images / videos into model inputs as verl's agent loop does;
* :mod:`.sampling` turns verl's sampling parameters into settings and per-request seeds;
* :mod:`.checks` refuses settings the backend cannot serve.
"""

BACKEND_NAME = "hf"
