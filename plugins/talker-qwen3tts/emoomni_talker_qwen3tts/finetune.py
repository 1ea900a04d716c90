"""What fine-tuning this talker needs to know about its model: a training sample as the tensors the talker reads,
and the teacher-forced loss of speaking the sample's audio (`emoomni train talker` runs the loop; it finds this
through the plugin class, `Qwen3TTSTalker.finetune`).

The sequence is the one qwen-tts builds when it speaks a VoiceDesign request (non-streaming mode, the plugin's
way): the instruction turn, the assistant role, the codec's think/language tags under text padding, the whole
text with its end marker over codec padding, then codec-bos; after that, one position per 12 Hz audio frame, the
sum of that frame's code embeddings (first codebook from the talker's table, the others from the code
predictor's) plus text padding. The talker learns each frame's first code (and the end of speech) from the
position before it; the code predictor learns a frame's other codes from the talker's hidden state there, as in
generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# LoRA targets: the attention and MLP projections of the talker's decoder and of its code predictor.
LORA_TARGET = (r"^(?:model|code_predictor\.model)\.layers\.\d+\."
               r"(?:self_attn\.(?:q|k|v|o)_proj|mlp\.(?:gate|up|down)_proj)$")


@dataclass
class TalkerSample:
    instruct_ids: torch.Tensor  # (1, n) "<|im_start|>user\n{instruction}<|im_end|>\n"
    text_ids: torch.Tensor  # (1, m) "<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n"
    language_id: int | None  # the codec's language tag; None: "auto"
    codes: torch.Tensor  # (frames, code groups) of the target audio


class TalkerFinetune:
    lora_target = LORA_TARGET

    def __init__(self, engine):
        """`engine`: the loaded qwen-tts Qwen3TTSModel (the plugin's `engine`), a VoiceDesign one."""
        if engine.model.config.tts_model_type != "voice_design":
            raise ValueError(f"fine-tuning needs a VoiceDesign checkpoint (this one is "
                             f"{engine.model.config.tts_model_type!r}: its sequence carries a speaker instead)")
        self.engine = engine
        self.config = engine.model.config
        self.talker_config = self.config.talker_config

    def sample(self, instruction: str, text: str, language: str, audio: np.ndarray, sample_rate: int) -> TalkerSample:
        """Tokenize the texts and encode the audio into the codec's 12 Hz codes. `language`: ISO 639-1 ("" or one
        the model has no tag for: no tag, the model's "auto")."""
        from . import LANGUAGES

        engine = self.engine
        name = LANGUAGES.get((language or "").split("-")[0].lower(), "")
        language_id = self.talker_config.codec_language_id.get(name)
        codes = engine.model.speech_tokenizer.encode(audio.astype(np.float32), sr=sample_rate).audio_codes[0]
        return TalkerSample(instruct_ids=engine._tokenize_texts([engine._build_instruct_text(instruction)])[0].cpu(),
                            text_ids=engine._tokenize_texts([engine._build_assistant_text(text)])[0].cpu(),
                            language_id=language_id, codes=codes.long().cpu().clone())

    def prefix(self, talker, sample: TalkerSample) -> torch.Tensor:
        """The embeddings before the first audio frame, (1, P, hidden)."""
        cfg, tc = self.config, self.talker_config
        device = talker.codec_head.weight.device
        text = lambda ids: talker.text_projection(talker.get_text_embeddings()(ids.to(device)))  # noqa: E731
        codec = lambda ids: talker.get_input_embeddings()(torch.tensor([ids], device=device))  # noqa: E731
        tts_bos, tts_eos, tts_pad = text(torch.tensor([[cfg.tts_bos_token_id, cfg.tts_eos_token_id,
                                                        cfg.tts_pad_token_id]])).chunk(3, dim=1)
        tags = ([tc.codec_nothink_id, tc.codec_think_bos_id, tc.codec_think_eos_id] if sample.language_id is None
                else [tc.codec_think_id, tc.codec_think_bos_id, sample.language_id, tc.codec_think_eos_id])
        tag_embeds = codec([*tags, tc.codec_pad_id])  # the tags, then the pad that sits under the text's start
        words = sample.text_ids[:, 3:-5]
        under_text = torch.cat((text(words), tts_eos), dim=1) + codec([tc.codec_pad_id] * (words.shape[1] + 1))
        return torch.cat((text(sample.instruct_ids), text(sample.text_ids[:, :3]),
                          torch.cat((tts_pad.expand(-1, tag_embeds.shape[1] - 1, -1), tts_bos), dim=1) + tag_embeds,
                          under_text, tts_pad + codec([tc.codec_bos_id])), dim=1)

    def frame_embeddings(self, talker, codes: torch.Tensor) -> torch.Tensor:
        """(1, frames, hidden): each frame's code embeddings summed, as generation feeds a frame back."""
        device = talker.codec_head.weight.device
        codes = codes.to(device)
        embeds = talker.get_input_embeddings()(codes[:, 0])
        for group in range(1, codes.shape[1]):
            embeds = embeds + talker.code_predictor.get_input_embeddings()[group - 1](codes[:, group])
        return embeds.unsqueeze(0)

    def loss(self, talker, sample: TalkerSample) -> tuple[torch.Tensor, dict]:
        """Teacher-forced loss of speaking `sample.codes`: the talker's first codes and end of speech, plus the code
        predictor's other codes."""
        device = talker.codec_head.weight.device
        prefix = self.prefix(talker, sample)
        tts_pad = talker.text_projection(talker.get_text_embeddings()(
            torch.tensor([[self.config.tts_pad_token_id]], device=device)))
        frames = self.frame_embeddings(talker, sample.codes) + tts_pad
        embeds = torch.cat((prefix, frames), dim=1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=device)
        position_ids, _ = talker.get_rope_index(mask)
        hidden = talker.model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids,
                              use_cache=False).last_hidden_state
        start = prefix.shape[1] - 1  # this position speaks the first frame
        steps = hidden[:, start:]  # frames + 1 positions: every frame's first code, then the end of speech
        codes = sample.codes.to(device)
        targets = torch.cat((codes[:, 0], torch.tensor([self.talker_config.codec_eos_token_id], device=device)))
        first = F.cross_entropy(talker.codec_head(steps)[0].float(), targets)
        _, rest = talker.forward_sub_talker_finetune(codes, steps[0, :-1])
        return first + rest, {"first_code_loss": first.detach().item(), "code_predictor_loss": rest.detach().item()}
