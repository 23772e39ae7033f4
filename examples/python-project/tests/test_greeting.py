from greet import greeting


def test_greeting_names_the_person():
    assert greeting("Ada") == "Hello, Ada!"


def test_greeting_defaults_to_world():
    assert greeting("  ") == "Hello, world!"


def test_greeting_shouts():
    assert greeting("Ada", shout=True) == "HELLO, ADA!"
