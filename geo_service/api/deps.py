"""Typed dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from geo_service.api.locators import LocatorCache
from geo_service.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_locators(request: Request) -> LocatorCache:
    cache: LocatorCache = request.app.state.locators
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
LocatorsDep = Annotated[LocatorCache, Depends(get_locators)]
