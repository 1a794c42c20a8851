from hack.nodeagent.pathmap import PathMap


def test_rewrites_mount_prefixes_in_any_position():
    pm = PathMap({"/models": "/state/pv/ns/models", "/dev/termination-log": "/state/pods/u/term"})
    assert pm.rewrite("/models") == "/state/pv/ns/models"
    assert pm.rewrite("/models/a/b.bin") == "/state/pv/ns/models/a/b.bin"
    assert pm.rewrite("--context=/models/x") == "--context=/state/pv/ns/models/x"
    assert pm.rewrite("a:/models:b") == "a:/state/pv/ns/models:b"
    assert pm.rewrite("--result-file /dev/termination-log") == "--result-file /state/pods/u/term"


def test_does_not_rewrite_lookalike_paths():
    pm = PathMap({"/data": "/local/d"})
    assert pm.rewrite("/database") == "/database"
    assert pm.rewrite("/work/data") == "/work/data"
    assert pm.rewrite("/data.bak") == "/data.bak"
    assert pm.rewrite("docker://127.0.0.1:5000/data") == "docker://127.0.0.1:5000/data"


def test_longest_mount_wins_and_output_is_not_rewritten_again():
    pm = PathMap({"/m": "/x/m", "/m/cache": "/y", "/x": "/should-not-apply"})
    assert pm.rewrite("/m/cache/f") == "/y/f"
    assert pm.rewrite("/m/f") == "/x/m/f"


def test_trailing_slash_in_mount_path_is_ignored():
    pm = PathMap({"/work/": "/local/w/"})
    assert pm.rewrite("/work/a") == "/local/w/a"
    assert pm.rewrite_all(["/work", "x"]) == ["/local/w", "x"]


def test_empty_map_is_identity():
    assert PathMap({}).rewrite("/anything") == "/anything"
