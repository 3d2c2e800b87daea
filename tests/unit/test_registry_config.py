"""ModelRegistry URLs: what is accepted, what is refused, and that passwords never reach a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from lume_platform.errors import AlreadyExists, ConfigurationError, RegistryError
from lume_platform.registry import ModelRegistry


@pytest.mark.parametrize("url", ["not a url", "://nothing", ""])
def test_malformed_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError, match="model registry URL"):
        ModelRegistry(url)


def test_unknown_driver_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError, match="unsupported model registry URL") as caught:
        ModelRegistry("mysql+nodriver://lume:s3cret@127.0.0.1:13306/lume")
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_unreachable_server_fails_on_first_use_naming_it_without_the_password() -> None:
    # Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once.
    registry = ModelRegistry("mysql+pymysql://lume:s3cret@127.0.0.1:9/lume?connect_timeout=2")
    with pytest.raises(RegistryError, match=r"could not migrate the schema of the model registry "
                                            r"mysql\+pymysql://lume:\*\*\*@127\.0\.0\.1:9/lume") as caught:
        registry.list_models()
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(registry)


def test_in_memory_sqlite_keeps_one_database_across_sessions() -> None:
    with ModelRegistry("sqlite://") as registry:
        registry.create_project("demo")
        assert [p.project_name for p in registry.list_projects()] == ["demo"]
        with pytest.raises(AlreadyExists):
            registry.create_project("demo")


def test_sqlite_file_and_its_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "registry.db"
    with ModelRegistry(f"sqlite:///{path}") as registry:
        registry.migrate()
        assert registry.current_revision() == registry.head_revision()
    assert path.is_file()


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    with ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}") as registry:
        model = registry.create_model("ada", "SLAC", "LCLS", "cu_hxr")
        registry.create_deployment(model.model_id, "1", source="s", sha256="0" * 64, package_import_name="p")
        registry.delete_model(model.model_id)
        # ON DELETE CASCADE only happens when SQLite enforces foreign keys.
        assert registry.list_deployments() == []
