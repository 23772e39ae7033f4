from greet import initials, main


def test_initials_of_two_names():
    assert initials("Ada Lovelace") == "A.L."


def test_initials_of_nothing():
    assert initials("") == ""


def test_main_prints_each_name(capsys):
    assert main(["--shout", "Ada", "Grace"]) == 0
    assert capsys.readouterr().out == "HELLO, ADA!\nHELLO, GRACE!\n"
