"""A small OpenAI-compatible chat-completions server that runs a Qwen3-VL checkpoint through transformers.

It stands in for vLLM/SGLang in tests: the request's messages (text parts and base64 `image_url` data URLs) become
a Qwen chat with PIL images, the processor and `generate` run for real, and `response_format` json_schema is
enforced by xgrammar as the in-process backend does. Debug endpoints expose what was received and can make the
next requests fail, so clients' retries are tested against a real server.

    python tests/openai_server.py --model DIR --port N [--host 127.0.0.1] [--device auto]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import threading
import time
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse

from cinedex.pipeline.vision.transformers_backend import LoadedModel, load_model, resolve_device

_DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,(.*)", re.S)


class State:
    def __init__(self, model: str, device: str):
        self.model_id = model
        self.device = resolve_device(device)
        self.dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.generate_lock = threading.Lock()  # one generate at a time: requests arrive on uvicorn's threadpool
        self.requests: list[dict] = []  # what was received, images summarised, with the prompt the model saw
        self.fail_next: list[int] = []  # status codes to answer the next requests with

    @property
    def loaded(self) -> LoadedModel:
        return load_model(self.model_id, self.device, self.dtype)


def _image(url: str):
    from PIL import Image

    match = _DATA_URL.fullmatch(url)
    if not match:
        raise HTTPException(400, "only base64 data URLs are supported for image_url")
    image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    return image.convert("RGB")


def to_qwen(messages: list[dict]) -> tuple[list[dict], list, list[dict]]:
    """(Qwen chat messages, their images in order, the messages with each image replaced by its size)."""
    chat, images, logged = [], [], []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chat.append({"role": message["role"], "content": [{"type": "text", "text": content}]})
            logged.append(message)
            continue
        parts, logged_parts = [], []
        for part in content or []:
            if part.get("type") == "text":
                parts.append({"type": "text", "text": part["text"]})
                logged_parts.append(part)
            elif part.get("type") == "image_url":
                image = _image(part["image_url"]["url"])
                images.append(image)
                parts.append({"type": "image"})
                logged_parts.append({"type": "image_url", "size": list(image.size)})
            else:
                raise HTTPException(400, f"unsupported content part {part.get('type')!r}")
        chat.append({"role": message["role"], "content": parts})
        logged.append({"role": message["role"], "content": logged_parts})
    return chat, images, logged


def _grammar(loaded: LoadedModel, response_format: dict | None):
    if not response_format or response_format.get("type") == "text":
        return None
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        return loaded.grammar(("schema", json.dumps(schema, sort_keys=True)), schema)
    if response_format.get("type") == "json_object":
        with loaded.lock:
            return loaded.compiler.compile_builtin_json_grammar()
    raise HTTPException(400, f"unsupported response_format {response_format.get('type')!r}")


def complete(state: State, body: dict) -> dict:
    import torch
    from xgrammar.contrib.hf import LogitsProcessor

    loaded = state.loaded
    processor, tokenizer = loaded.processor, loaded.processor.tokenizer
    chat, images, logged = to_qwen(body.get("messages") or [])
    text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    state.requests.append({**{k: v for k, v in body.items() if k != "messages"}, "messages": logged,
                           "prompt": text})
    inputs = processor(text=[text], images=images or None, return_tensors="pt").to(state.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.model.dtype)
    grammar = _grammar(loaded, body.get("response_format"))
    temperature = float(body.get("temperature") or 0.0)
    sampling: dict[str, Any] = ({"do_sample": True, "temperature": temperature} if temperature > 0 else
                                {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
    max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
    with state.generate_lock, torch.inference_mode():
        output = loaded.model.generate(
            **inputs, max_new_tokens=max_tokens, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, **sampling,
            **({"logits_processor": [LogitsProcessor([grammar])]} if grammar is not None else {}))
    new = output[0, inputs["input_ids"].shape[1]:].tolist()
    finished = bool(new) and new[-1] == tokenizer.eos_token_id
    prompt_tokens = int(inputs["input_ids"].shape[1])
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or state.model_id,
        "choices": [{"index": 0, "finish_reason": "stop" if finished else "length",
                     "message": {"role": "assistant", "content": tokenizer.decode(new, skip_special_tokens=True)}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(new),
                  "total_tokens": prompt_tokens + len(new)},
    }


def create_app(state: State) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": state.model_id, "object": "model", "owned_by": "cinedex-tests"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(body: dict):  # sync: FastAPI runs it in a worker thread, off the event loop
        if state.fail_next:
            status = state.fail_next.pop(0)
            return JSONResponse({"error": {"message": "failing on request (debug)", "code": status}}, status)
        return complete(state, body)

    @app.get("/debug/requests")
    def requests():
        return state.requests

    @app.post("/debug/fail")
    def fail(body: dict):
        state.fail_next = [int(s) for s in body.get("statuses", [])]
        return {"fail_next": state.fail_next}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    state = State(args.model, args.device)
    state.loaded  # load before serving, so /v1/models answering means the model is ready
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
