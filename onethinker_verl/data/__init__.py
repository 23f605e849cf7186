"""OneThinker data: row parsing, prompt building, media handling and the verl dataset class.

``onethinker_verl.data.dataset.OneThinkerDataset`` is the class for ``data.custom_cls``; the converters in
the repository's ``data_prep/`` folder and that class share the row parsing (:mod:`.corpus`) and the prompt
builder (:mod:`.prompts`), so a prepared parquet and a raw OneThinker JSON file give identical prompts.
"""
