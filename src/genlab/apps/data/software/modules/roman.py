"""Roman numerals."""

NUMERALS = [
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
]


def to_roman(number):
    if not 0 < number < 4000:
        raise ValueError("only 1 to 3999 have Roman numerals")
    out = ""
    for value, letters in NUMERALS:
        while number >= value:
            out += letters
            number -= value
    return out


def from_roman(text):
    values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
    total = 0
    previous = 0
    for ch in reversed(text.upper()):
        if ch not in values:
            raise ValueError(f"not a Roman numeral: {ch}")
        value = values[ch]
        if value < previous:
            total -= value
        else:
            total += value
            previous = value
    return total


def is_valid_roman(text):
    try:
        return to_roman(from_roman(text)) == text.upper()
    except ValueError:
        return False
