"""Hugging Face training-loop pieces for the integration tests: CPU TrainingArguments and tokenized QA datasets."""
from datasets import Dataset

from probekit.distillation.batches import make_examples

ARGS = dict(per_device_train_batch_size=2, learning_rate=5e-3, use_cpu=True, report_to=[], disable_tqdm=True,
            logging_strategy="no", seed=0)


def qa_dataset(tok, facts) -> Dataset:
    """Tokenized QA examples as the training loop builds them; labels -100 on the prompt."""
    rows = [{"input_ids": list(e.input_ids), "labels": [-100] * e.prompt_length + list(e.input_ids[e.prompt_length:])}
            for e in make_examples(tok, facts)]
    return Dataset.from_list(rows)
