"""The offline default tokenizer: word-level, trained on the dataset's prompt vocabulary."""

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "[PAD]", "</s>", "[UNK]"


def train_word_tokenizer(corpus):
    """A lower-cased word-level tokenizer over ``corpus`` (an iterable of strings); appends </s>."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(
        corpus, trainers.WordLevelTrainer(special_tokens=[PAD, EOS, UNK], show_progress=False)
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, tokenizer.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK)


def vocabulary_size(tokenizer):
    """Embedding rows needed: ids need not be contiguous, so size by the largest id, not the count."""
    return max(tokenizer.get_vocab().values()) + 1
