"""The stand-in's reward model (upstream: modeling_internlm_xcomposer2.py of the reward checkpoint).

Its behaviour, as upstream's:
- `__init__` reads `config.max_length` (transformers 5 drops it: AttributeError), fetches the
  frame-label font with `urlopen` (fails offline), builds the CLIP tower with `from_pretrained`
  (refused on transformers 5's meta device, and needs the hub), and prints the max length;
- the chat format is InternLM2's (`[UNUSED_TOKEN_146]role\\n...[UNUSED_TOKEN_145]\\n`, roles
  system/user/assistant only) ending in `</s>[UNUSED_TOKEN_130]`, the reward token;
- media go where the text says `<ImageHere>`; only one medium and no marker puts it first;
  with several media hd_num drops to 6 and media beyond the markers are ignored;
- media are read from file paths, image or video by extension, one vision pass per medium;
- each sample is cut to max_length (the reward token with it), the batch right-padded with the
  pad token's embedding, and `forward` reads the score at the last position the mask marks;
- `get_scores` returns `logits.squeeze().cpu().tolist()`: a bare float for one conversation.
"""

import os

import torch
from PIL import Image
from torch import nn
from torchvision import transforms
from transformers.modeling_outputs import SequenceClassifierOutputWithPast

from .build_mlp import build_vision_projector, build_vision_tower
from .configuration_internlm_xcomposer2 import InternLMXcomposer2Config  # noqa: F401
from .ixc_utils import Image_transform, Video_transform, frame2img, get_font, load_video
from .modeling_internlm2 import InternLM2Model, InternLM2PreTrainedModel

image_extensions = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
video_extensions = {".mp4", ".avi", ".mkv", ".mov", ".wmv"}
ROLES = ("system", "user", "assistant")


class InternLMXComposer2ForCausalLM(InternLM2PreTrainedModel):
    _auto_class = "AutoModelForCausalLM"
    _tied_weights_keys = ["output.weight"]

    def __init__(self, config):
        super().__init__(config)
        self.model = InternLM2Model(config)
        self.vocab_size = config.vocab_size
        self.score = nn.Linear(config.hidden_size, 1, bias=False)
        self.tokenizer = None
        self.hd_num = 25
        self.font = get_font()
        self.max_length = config.max_length
        print(f"Set max length to {self.max_length}")
        self.post_init()
        width = config.hidden_size  # upstream: 4096, four CLIP-L widths merged 2x2
        self.plora_glb_GN = nn.Parameter(torch.zeros([1, 1, width]))
        self.plora_sub_GN = nn.Parameter(torch.zeros([1, 1, 1, width]))
        self.vit = build_vision_tower()
        self.vision_proj = build_vision_projector(width)
        self.vis_processor = transforms.Compose(
            [
                transforms.ToTensor(),
                transforms.Normalize(
                    (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
                ),
            ]
        )

    def get_input_embeddings(self):
        return self.model.tok_embeddings

    def set_input_embeddings(self, value):
        self.model.tok_embeddings = value

    def get_decoder(self):
        return self.model

    def encode_text(self, text, add_special_tokens=False):
        ids = self.tokenizer(
            text, return_tensors="pt", add_special_tokens=add_special_tokens
        ).input_ids
        return self.model.tok_embeddings(ids.to(self.device))

    def encode_img(self, image, hd_num=25):
        if image is None:
            return None
        if isinstance(image, str):
            extension = os.path.splitext(image)[1].lower()
            if extension in image_extensions:
                image = Image_transform(Image.open(image).convert("RGB"), hd_num=hd_num)
            elif extension in video_extensions:
                image = Video_transform(frame2img(load_video(image), self.font), hd_num=hd_num)
            else:
                print("Unknown input format", image)
                return None
            image = self.vis_processor(image).unsqueeze(0).to(self.device)
        else:
            assert isinstance(image, torch.Tensor)
        img_embeds, _, _ = self.img2emb(image)
        return img_embeds

    def img2emb(self, image):
        img_embeds, img_split = self.vit([image], self.plora_glb_GN, self.plora_sub_GN)
        if len(img_split) > 1:
            raise AssertionError("one image at a time")
        img_embeds = self.vision_proj(img_embeds)
        atts_img = torch.ones(img_embeds.size()[:-1], dtype=torch.long).to(img_embeds.device)
        img_target = torch.full(img_embeds.size()[:2], -100, dtype=torch.long)
        return img_embeds, atts_img, img_target.to(img_embeds.device)

    def apply_chat_template(
        self, conversation, image, max_length=16384, hd_num=24, apply_template=True
    ):
        if apply_template:
            prompt = ""
            for message in conversation:
                if message["role"] not in ROLES:
                    raise NotImplementedError(f"The role '{message['role']}' is not a valid")
                prompt += f"[UNUSED_TOKEN_146]{message['role']}\n{message['content']}"
                prompt += "[UNUSED_TOKEN_145]\n"
            prompt += "</s>[UNUSED_TOKEN_130]"
        else:
            prompt = conversation
        image_nums = len(image)
        if image_nums == 1 and "<ImageHere>" not in prompt:
            prompt = "<ImageHere>" + prompt
        parts = prompt.split("<ImageHere>")
        if len(parts) != image_nums + 1:
            print("Warning! The image number != given position!")
        if image_nums > 1:
            hd_num = 6
        embeds, im_mask, total = [], [], 0
        need_bos = True
        for index, part in enumerate(parts):
            if need_bos or len(part) > 0:
                ids = (
                    self.tokenizer(
                        part, return_tensors="pt", padding="longest", add_special_tokens=need_bos
                    )
                    .to(self.device)
                    .input_ids
                )
                need_bos = False
                part_embeds = self.model.tok_embeddings(ids)
                embeds.append(part_embeds)
                im_mask.append(torch.zeros(part_embeds.shape[:2]))
                total += part_embeds.shape[1]
            if index < image_nums:
                if isinstance(image[index], str):
                    img = self.encode_img(image[index], hd_num)
                else:
                    img, _, _ = self.img2emb(image[index])
                embeds.append(img)
                im_mask.append(torch.ones(img.shape[:2]))
                total += img.shape[1]
            if total > max_length:
                break
        embeds = torch.cat(embeds, dim=1)[:, :max_length].to(self.device)
        im_mask = torch.cat(im_mask, dim=1)[:, :max_length].to(self.device).bool()
        return embeds, im_mask, total

    def get_score(self, conversation, image, max_length=16384, hd_num=24, apply_template=True):
        embeds, im_mask, _ = self.apply_chat_template(
            conversation, image, max_length, hd_num, apply_template
        )
        attention_mask = torch.ones(1, embeds.shape[1]).to(bool).to(self.device)
        outputs = self.forward(inputs_embeds=embeds, attention_mask=attention_mask, im_mask=im_mask)
        return outputs.logits.cpu().item()

    def get_scores(self, conversations, images, max_length=16384, hd_num=24, apply_template=True):
        rows, masks = [], []
        for conversation, image in zip(conversations, images, strict=False):
            embeds, im_mask, _ = self.apply_chat_template(
                conversation, image, max_length, hd_num, apply_template
            )
            rows.append(embeds)
            masks.append(im_mask)
        longest = min(max(row.shape[1] for row in rows), max_length)
        pad_id = torch.full([1, 1], self.tokenizer.pad_token_id).long().to(self.device)
        pad = self.model.tok_embeddings(pad_id)
        batch_embeds, batch_atts, batch_im = [], [], []
        for embeds, im_mask in zip(rows, masks, strict=True):
            length, dtype = embeds.shape[1], im_mask.dtype
            if length >= longest:
                batch_embeds.append(embeds[:, :longest])
                batch_atts.append(torch.ones(1, longest).to(dtype).to(self.device))
                batch_im.append(im_mask[:, :longest])
            else:
                short = longest - length
                batch_embeds.append(torch.cat([embeds, pad.repeat(1, short, 1)], dim=1))
                real = torch.cat([torch.ones(1, length), torch.zeros(1, short)], dim=1)
                batch_atts.append(real.to(dtype).to(self.device))
                batch_im.append(torch.cat([im_mask, torch.zeros(1, short).to(dtype)], dim=1))
        outputs = self.forward(
            inputs_embeds=torch.cat(batch_embeds),
            attention_mask=torch.cat(batch_atts),
            im_mask=torch.cat(batch_im),
        )
        return outputs.logits.squeeze().cpu().tolist()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        if kwargs.get("samples"):
            raise NotImplementedError("the stand-in has no training path")
        im_mask = kwargs.get("im_mask", None)
        infer_mode = kwargs.get("infer_mode", "base")
        if im_mask is None and inputs_embeds is not None:
            im_mask = torch.zeros(inputs_embeds.shape[:2]).to(inputs_embeds.device).bool()
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=return_dict,
            im_mask=im_mask,
            infer_mode=infer_mode,
        )
        logits = self.score(outputs[0]).float()
        # The score is read at the last position the mask marks real (cumsum's first maximum).
        ends = attention_mask.cumsum(dim=1).argmax(dim=1).view(-1, 1)
        pooled = torch.gather(logits.squeeze(-1), 1, ends)
        if not return_dict:
            return (pooled,) + tuple(outputs[1:])
        return SequenceClassifierOutputWithPast(
            loss=None,
            logits=pooled,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
