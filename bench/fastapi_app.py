"""The benchmark's FastAPI app (Debian's python3-fastapi, pydantic 1): a few routes with pydantic
models, each answering a small JSON body, so that the numbers include a framework's cost.

    GET  /                  {"message": "Hello, world"}
    GET  /items/{item_id}   an Item (validated path and query parameters), e.g. /items/3?q=x
    POST /items             echoes the posted Item back, validated, with its total price
    GET  /pid               {"pid": os.getpid()}: which worker answered (bench.py uses it to see
                            a replaced worker serve)
    GET  /sleep?ms=N        answers after asyncio.sleep(N ms) (at most 60000)

FastAPI speaks the lifespan protocol, so every server logs "Application startup complete." once
per worker, as with app.py.
"""

import asyncio
import os
from typing import List, Optional

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

app = FastAPI(title="corral bench", docs_url=None, redoc_url=None, openapi_url=None)


class Tag(BaseModel):
    name: str = Field(..., max_length=32)


class Item(BaseModel):
    id: int
    name: str
    price: float = Field(..., ge=0)
    quantity: int = 1
    tags: List[Tag] = []
    note: Optional[str] = None


class Priced(BaseModel):
    item: Item
    total: float


class Message(BaseModel):
    message: str


class Pid(BaseModel):
    pid: int


@app.get("/", response_model=Message)
async def root():
    return Message(message="Hello, world")


@app.get("/items/{item_id}", response_model=Item)
async def read_item(item_id: int, q: Optional[str] = Query(None, max_length=50)):
    return Item(id=item_id, name=f"item {item_id}", price=1.5 * item_id, quantity=2,
                tags=[Tag(name="bench")], note=q)


@app.post("/items", response_model=Priced)
async def create_item(item: Item):
    return Priced(item=item, total=item.price * item.quantity)


@app.get("/pid", response_model=Pid)
async def pid():
    return Pid(pid=os.getpid())


@app.get("/sleep", response_model=Message)
async def sleep(ms: int = Query(100, ge=0, le=60000)):
    await asyncio.sleep(ms / 1000)
    return Message(message="slept")
