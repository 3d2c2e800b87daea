"""The LUME_* service environment: every variable, both URL forms, embedded defaults and the one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from lume_platform.errors import ConfigurationError, UnknownFilesystemError
from lume_platform.services import Services, configure_services, reset_services
from lume_platform.settings import load_settings

MYSQL = {
    "LUME_MODEL_DB__HOST": "mysql.lume.svc",
    "LUME_MODEL_DB__PORT": "3306",
    "LUME_MODEL_DB__USER": "lume",
    "LUME_MODEL_DB__PASSWORD": "p@ss/word",
    "LUME_MODEL_DB__DATABASE": "model_db",
}
MONGO = {
    "LUME_RESULTS_DB__HOST": "mongodb.lume.svc",
    "LUME_RESULTS_DB__PORT": "27017",
    "LUME_RESULTS_DB__USERNAME": "root",
    "LUME_RESULTS_DB__PASSWORD": "s3:cr@t",
    "LUME_RESULTS_DB__DATABASE": "results",
}


def faulty_variables(environ: dict[str, str]) -> set[str]:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ)
    for name in caught.value.variables:
        assert name in str(caught.value), f"{name} is not named in the message"
    return set(caught.value.variables)


def test_nothing_set_gives_the_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings({"LUME_HOME": str(tmp_path)})
    assert settings.model_db_url == f"sqlite:///{tmp_path}/registry.sqlite"
    assert settings.results_db_url == f"sqlite:///{tmp_path}/results.sqlite"
    assert settings.results_db_database == "lume"
    assert settings.local_root == tmp_path / "files"
    assert settings.mounted_filesystem is None


def test_home_defaults_to_the_xdg_data_directory(tmp_path: Path) -> None:
    settings = load_settings({"XDG_DATA_HOME": str(tmp_path), "HOME": "/nonexistent"})
    assert settings.data_dir == tmp_path / "lume"


def test_home_expands_the_user_directory() -> None:
    settings = load_settings({"LUME_HOME": "~/lume-data"})
    assert settings.data_dir == Path("~/lume-data").expanduser()


def test_mysql_from_its_parts_quotes_the_password() -> None:
    settings = load_settings(MYSQL)
    assert settings.model_db_url == "mysql+pymysql://lume:p%40ss%2Fword@mysql.lume.svc:3306/model_db"
    assert "p@ss/word" not in repr(settings)


def test_model_db_dialect_and_pool_options_of_lume_services() -> None:
    settings = load_settings(
        {
            **MYSQL,
            "LUME_MODEL_DB__DIALECT_STR": "mysql+mysqldb",
            "LUME_MODEL_DB__CONNECTION__POOL_SIZE": "7",
            "LUME_MODEL_DB__CONNECTION__POOL_PRE_PING": "false",
        }
    )
    assert settings.model_db is not None
    assert settings.model_db_url.startswith("mysql+mysqldb://")
    assert settings.model_db.connection.pool_size == 7
    assert settings.model_db.connection.pool_pre_ping is False


def test_model_db_url_form() -> None:
    settings = load_settings({"LUME_MODEL_DB__URL": "sqlite:////data/registry.sqlite"})
    assert settings.model_db_url == "sqlite:////data/registry.sqlite"


def test_names_are_case_insensitive_like_lume_services() -> None:
    settings = load_settings({"lume_model_db__url": "sqlite:////x.sqlite"})
    assert settings.model_db_url == "sqlite:////x.sqlite"


def test_mongodb_from_its_parts() -> None:
    settings = load_settings(MONGO)
    assert settings.results_db_url == "mongodb://root:s3%3Acr%40t@mongodb.lume.svc:27017/"
    assert settings.results_db_database == "results"


def test_mongodb_without_credentials_and_with_an_auth_mechanism() -> None:
    settings = load_settings(
        {
            "LUME_RESULTS_DB__HOST": "m",
            "LUME_RESULTS_DB__PORT": "27018",
            "LUME_RESULTS_DB__AUTHMECHANISM": "PLAIN",
        }
    )
    assert settings.results_db_url == "mongodb://m:27018/?authMechanism=PLAIN"


def test_mongodb_client_options_of_lume_services_go_into_the_url() -> None:
    settings = load_settings({**MONGO, "LUME_RESULTS_DB__OPTIONS": '{"tls": true, "replicaSet": "rs0"}'})
    assert (
        settings.results_db_url
        == "mongodb://root:s3%3Acr%40t@mongodb.lume.svc:27017/?tls=true&replicaSet=rs0"
    )


def test_results_db_url_form_takes_the_database_from_the_path_unless_named() -> None:
    from_path = load_settings({"LUME_RESULTS_DB__URL": "mongodb://127.0.0.1:27018/exp?tls=false"})
    assert from_path.results_db_url == "mongodb://127.0.0.1:27018/exp?tls=false"
    assert from_path.results_db_database == "exp"
    named = load_settings({"LUME_RESULTS_DB__URL": "mongodb://h/exp", "LUME_RESULTS_DB__DATABASE": "other"})
    assert named.results_db_database == "other"
    embedded = load_settings({"LUME_RESULTS_DB__URL": "sqlite:////data/results.sqlite"})
    assert embedded.results_db_url == "sqlite:////data/results.sqlite"


def test_mounted_filesystem_variables() -> None:
    settings = load_settings(
        {
            "LUME_MOUNTED_FILESYSTEM__IDENTIFIER": "shared",
            "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH": "/srv/lume",
            "LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS": "/lume-services/data",
            "LUME_MOUNTED_FILESYSTEM__MOUNT_TYPE": "Directory",
        }
    )
    mounted = settings.mounted_filesystem
    assert mounted is not None
    assert (mounted.identifier, mounted.mount_path, mounted.mount_type) == (
        "shared",
        "/srv/lume",
        "Directory",
    )
    assert mounted.root == Path("/lume-services/data")


def test_mounted_filesystem_defaults() -> None:
    settings = load_settings({"LUME_MOUNTED_FILESYSTEM__MOUNT_PATH": "/data"})
    mounted = settings.mounted_filesystem
    assert mounted is not None
    assert (mounted.identifier, mounted.root, mounted.mount_type) == (
        "mounted",
        Path("/data"),
        "DirectoryOrCreate",
    )


@pytest.mark.parametrize("missing", sorted(MYSQL))
def test_each_missing_mysql_variable_is_named(missing: str) -> None:
    environ = {name: value for name, value in MYSQL.items() if name != missing}
    assert faulty_variables(environ) == {missing}


@pytest.mark.parametrize("missing", ["LUME_RESULTS_DB__HOST", "LUME_RESULTS_DB__PORT"])
def test_each_missing_mongodb_address_variable_is_named(missing: str) -> None:
    environ = {name: value for name, value in MONGO.items() if name != missing}
    assert faulty_variables(environ) == {missing}


@pytest.mark.parametrize("given", ["LUME_RESULTS_DB__USERNAME", "LUME_RESULTS_DB__PASSWORD"])
def test_a_lone_mongodb_credential_names_the_other(given: str) -> None:
    environ = {"LUME_RESULTS_DB__HOST": "m", "LUME_RESULTS_DB__PORT": "1", given: "x"}
    other = ({"LUME_RESULTS_DB__USERNAME", "LUME_RESULTS_DB__PASSWORD"} - {given}).pop()
    assert faulty_variables(environ) == {other}


def test_every_fault_is_named_in_one_error() -> None:
    environ = {
        "LUME_HOME": "relative/dir",
        "LUME_MODEL_DB__HOST": "h",
        "LUME_MODEL_DB__PORT": "not-a-port",
        "LUME_MODEL_DB__HOTS": "typo",
        "LUME_RESULTS_DB__URL": "http://not-mongo",
        "LUME_MOUNTED_FILESYSTEM__IDENTIFIER": "shared",
    }
    assert faulty_variables(environ) == {
        "LUME_HOME",
        "LUME_MODEL_DB__PORT",
        "LUME_MODEL_DB__HOTS",
        "LUME_MODEL_DB__USER",
        "LUME_MODEL_DB__PASSWORD",
        "LUME_MODEL_DB__DATABASE",
        "LUME_RESULTS_DB__URL",
        "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH",
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LUME_MODEL_DB__URL", "not a url"),
        ("LUME_RESULTS_DB__URL", "postgres://x"),
        ("LUME_RESULTS_DB__PORT", "70000"),
        ("LUME_MOUNTED_FILESYSTEM__MOUNT_PATH", "relative"),
        ("LUME_MOUNTED_FILESYSTEM__MOUNT_TYPE", "Sometimes"),
        ("LUME_MOUNTED_FILESYSTEM__IDENTIFIER", "local"),
        ("LUME_MODEL_DB__CONNECTION__POOL_SIZE", "0"),
    ],
)
def test_malformed_values_are_named(name: str, value: str) -> None:
    base = {"LUME_RESULTS_DB__HOST": "m"} if name == "LUME_RESULTS_DB__PORT" else {}
    if name.startswith("LUME_MOUNTED") and name != "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH":
        base["LUME_MOUNTED_FILESYSTEM__MOUNT_PATH"] = "/data"
    if name == "LUME_MODEL_DB__CONNECTION__POOL_SIZE":
        base["LUME_MODEL_DB__URL"] = "sqlite:///x"
    assert faulty_variables({**base, name: value}) == {name}


def test_url_and_parts_together_are_a_conflict() -> None:
    environ = {**MYSQL, "LUME_MODEL_DB__URL": "sqlite:///x"}
    assert faulty_variables(environ) == set(MYSQL)


def test_process_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUME_MODEL_DB__URL", "sqlite:////from/env.sqlite")
    assert load_settings().model_db_url == "sqlite:////from/env.sqlite"
    monkeypatch.setenv("LUME_MODEL_DB__PORT", "x")
    with pytest.raises(ConfigurationError):
        load_settings()


def test_services_are_cached_per_process_and_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUME_HOME", str(tmp_path / "first"))
    reset_services()
    try:
        first = configure_services()
        assert configure_services() is first
        assert first.filesystem("local").root == tmp_path / "first" / "files"
        monkeypatch.setenv("LUME_HOME", str(tmp_path / "second"))
        assert configure_services() is first  # the environment is read once per process
        reset_services()
        second = configure_services()
        assert second is not first
        assert second.settings.data_dir == tmp_path / "second"
    finally:
        reset_services()


def test_explicit_settings_replace_the_cached_services(tmp_path: Path) -> None:
    try:
        services = configure_services(load_settings({"LUME_HOME": str(tmp_path)}))
        assert configure_services() is services
    finally:
        reset_services()


def test_services_name_the_filesystems_they_have(tmp_path: Path) -> None:
    services = Services(load_settings({"LUME_HOME": str(tmp_path)}))
    with pytest.raises(UnknownFilesystemError, match="LUME_MOUNTED_FILESYSTEM__MOUNT_PATH"):
        services.filesystem("mounted")
    mounted = Services(
        load_settings(
            {
                "LUME_HOME": str(tmp_path),
                "LUME_MOUNTED_FILESYSTEM__IDENTIFIER": "shared",
                "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH": "/data",
                "LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS": str(tmp_path / "alias"),
            }
        )
    )
    assert sorted(mounted.filesystems) == ["local", "shared"]
    assert mounted.filesystem("shared").root == tmp_path / "alias"
    assert (tmp_path / "alias").is_dir()  # DirectoryOrCreate


def test_a_broken_environment_fails_configure_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUME_RESULTS_DB__PORT", "27017")
    reset_services()
    try:
        with pytest.raises(ConfigurationError) as caught:
            configure_services()
        assert caught.value.variables == ("LUME_RESULTS_DB__HOST",)
    finally:
        reset_services()


def test_task_results_are_kept_on_the_mount_else_in_the_home(tmp_path: Path) -> None:
    from lume_platform.tasks import task_result_dir

    mount = "LUME_MOUNTED_FILESYSTEM__MOUNT_"
    assert task_result_dir({f"{mount}PATH": "/p", f"{mount}ALIAS": "/a"}) == Path("/a/.lume/task-results")
    assert task_result_dir({f"{mount}PATH": "/p", "LUME_HOME": "/h"}) == Path("/p/.lume/task-results")
    assert task_result_dir({"LUME_HOME": "/h"}) == Path("/h/task-results")
    # A relative mount is a configuration error reported by configure_services(); never used here.
    assert task_result_dir({f"{mount}PATH": "rel", "LUME_HOME": "/h"}) == Path("/h/task-results")
