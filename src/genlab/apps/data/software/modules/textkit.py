"""Small text utilities."""


def slugify(text, sep="-"):
    words = []
    word = ""
    for ch in text.lower():
        if ch.isalnum():
            word += ch
        elif word:
            words.append(word)
            word = ""
    if word:
        words.append(word)
    return sep.join(words)


def is_palindrome(text):
    letters = [c.lower() for c in text if c.isalnum()]
    return letters == letters[::-1]


def word_count(text):
    counts = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'")
        if not word:
            continue
        counts[word] = counts.get(word, 0) + 1
    return counts


def truncate(text, width, ellipsis="..."):
    if width < len(ellipsis):
        raise ValueError("width is shorter than the ellipsis")
    if len(text) <= width:
        return text
    return text[: width - len(ellipsis)] + ellipsis


def capitalize_words(text):
    return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
