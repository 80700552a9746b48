"""A tiny, randomly initialised Qwen3-VL checkpoint built on the spot, so the vision code runs without a hub.

Everything a real checkpoint folder holds is here: model weights and config, a byte-level BPE tokenizer with the
Qwen special tokens (its vocabulary trained on a small built-in English corpus, so JSON punctuation, digits and
words are all single or few tokens), the image and video processor configs and a Qwen-style chat template. It is
loaded with `AutoProcessor.from_pretrained` / `Qwen3VLForConditionalGeneration.from_pretrained` like a real one.
Its weights are random: it emits gibberish, which constrained decoding turns into schema-valid JSON.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]

# Qwen3-VL's template, reduced to what the pipeline sends: system/user/assistant turns whose content is a string
# or a list of text, image and video parts.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- elif part['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'video' -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

CORPUS = """
The film opens on a wide shot of a green meadow at dawn. A large white rabbit steps out of his burrow, stretches,
and smiles at a butterfly. Three rodents watch from behind a tree; one of them throws a nut at the rabbit.
Cyclists race down a mountain road, cut to a close-up of a rider's face, then a crowd cheering by the road.
A man talks on a phone in the passenger seat of a car. The woman on the other end asks where he is.
"Where are you?" "I'm in the car, we will be there at 10:30." "OK, see you soon."
Scene types: dialogue, action, establishing, montage, title, transition, other.
Characters: rabbit, butterfly, squirrel, chinchilla, man, woman, rider, crowd, driver, passenger.
Locations: meadow, forest, road, mountain, car, street, city, house, kitchen, office, river, beach.
Emotions: happy, sad, angry, calm, tense, afraid, surprised, excited, bored, curious, neutral.
Objects: tree, nut, apple, bicycle, helmet, phone, window, seat, road sign, flower, rock, sky, cloud, sun.
Text on screen: "THE END", "Chapter 1", "Big Buck Bunny", "10:45", "EXIT", "STOP".
{"moments": [{"start_s": 12.5, "end_s": 14.0, "scene_type": "action", "event": "A rabbit jumps.",
"characters": ["rabbit"], "speaker": "", "dialogue_summary": "", "location": "meadow", "action": "jumping",
"emotion": "happy", "objects_visible": ["tree", "flower"], "spatial_description": "left of frame",
"on_screen_text": ""}]}
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 40 50 60 70 80 90 100 0.5 1.0 1.5 2.5 3.25 -1 1e3
true false null [ ] { } , : " \\ / - + . e E
"""


def _tokenizer(vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.normalizer = normalizers.NFC()
    # Qwen2's pre-tokenizer: its split regex, then byte-level mapping.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(
            pattern=Regex(
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+"),
            behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tokenizer.train_from_iterator([CORPUS] * 4, trainer=trainer)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return Qwen2TokenizerFast(
        tokenizer_object=tokenizer, unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        model_max_length=32768, clean_up_tokenization_spaces=False,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
    )


def build_tiny_qwen3vl(path: Path, seed: int = 0) -> Path:
    """Writes a tiny random Qwen3-VL checkpoint (about 1.5 MB) to `path` and returns `path`."""
    import torch
    from transformers import (Qwen2VLImageProcessorFast, Qwen3VLConfig, Qwen3VLForConditionalGeneration,
                              Qwen3VLProcessor)
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fast = _tokenizer(vocab_size=1024)
    ids = {token: fast.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    vocab_size = len(fast)

    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=32768,
            rope_theta=5000000.0, tie_word_embeddings=False,
            rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True},
            bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=256,
            deepstack_visual_indexes=[1],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(path)

    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessorFast(patch_size=16, temporal_patch_size=2, merge_size=2,
                                                  image_mean=[0.5] * 3, image_std=[0.5] * 3),
        video_processor=Qwen3VLVideoProcessor(),
        tokenizer=fast,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(path)
    return path


if __name__ == "__main__":
    import sys

    print(build_tiny_qwen3vl(Path(sys.argv[1])))
