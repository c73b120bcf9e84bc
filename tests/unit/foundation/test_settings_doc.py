"""docs/settings.md and deploy/k8s/base/settings.env are generated from shared/settings.py and current."""

from __future__ import annotations

from tools import gen_settings_doc as gen


def test_generated_files_are_up_to_date() -> None:
    stale = [
        str(path.relative_to(gen.REPO))
        for path, text in gen.outputs().items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], f"run `.venv/bin/python tools/gen_settings_doc.py` to regenerate {stale}"


def test_the_doc_lists_every_variable_and_marks_secrets() -> None:
    doc = gen.render_doc(gen.walk())
    for setting in gen.walk():
        assert f"`{setting.env}`" in doc
    line = next(row for row in doc.splitlines() if "`BLINDSPOT_SECRET_KEY`" in row)
    assert "**Secret.**" in line and "dev-only" not in line


def test_the_k8s_env_never_holds_a_secret_value() -> None:
    env = gen.render_k8s_env(gen.walk())
    keys = {line.split("=", 1)[0] for line in env.splitlines() if line and not line.startswith("#")}
    assert not keys & set(gen.secret_names())
    assert "BLINDSPOT_REDIS__URL" in keys and "KEDA_REDIS_ADDRESS" in keys


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stale = tmp_path / "settings.md"
    stale.write_text("old")
    monkeypatch.setattr(gen, "DOC", stale)
    monkeypatch.setattr(gen, "K8S_ENV", tmp_path / "settings.env")
    monkeypatch.setattr(gen, "REPO", tmp_path)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    assert "| `BLINDSPOT_DATABASE__URL` |" in stale.read_text()
