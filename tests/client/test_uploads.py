"""A file to upload is read once, named, and checked before it is read."""

from __future__ import annotations

import io

import pytest

from rawchat.client.uploads import read_upload
from rawchat.errors import InvalidRequestError


def refuse_over(limit):
    def check(size, name):
        if size > limit:
            raise InvalidRequestError(f"{name} is {size} bytes")

    return check


def test_bytes_are_sent_under_the_default_name_unless_one_is_given():
    check = refuse_over(10)
    assert read_upload(b"abc", None, default_name="a.wav", limit=10, check=check) == (
        b"abc",
        "a.wav",
    )
    assert read_upload(b"abc", "b.mp3", default_name="a.wav", limit=10, check=check) == (
        b"abc",
        "b.mp3",
    )


def test_a_path_is_named_by_its_base_name_and_refused_before_it_is_read(tmp_path):
    path = tmp_path / "question.wav"
    path.write_bytes(b"x" * 20)
    seen = []

    def check(size, name):
        seen.append((size, name))
        if size > 10:
            raise InvalidRequestError("too big")

    with pytest.raises(InvalidRequestError):
        read_upload(path, None, default_name="a.wav", limit=10, check=check)
    assert seen == [(20, "question.wav")]


def test_a_seekable_file_is_read_from_its_position_and_checked_by_what_is_left():
    file = io.BytesIO(b"0123456789")
    file.seek(4)
    seen = []
    data = read_upload(
        file, None, default_name="a.wav", limit=100, check=lambda s, n: seen.append(s)
    )
    assert data == (b"456789", "a.wav")
    assert seen == [6, 6]


class Pipe:
    """A file object that cannot seek, counting what it is asked for."""

    def __init__(self, data):
        self.data = data
        self.asked = []

    def read(self, size=-1):
        self.asked.append(size)
        return self.data[:size] if size >= 0 else self.data

    def seekable(self):
        return False


def test_a_file_that_cannot_seek_is_read_no_further_than_one_byte_past_the_limit():
    pipe = Pipe(b"x" * 100)
    with pytest.raises(InvalidRequestError) as caught:
        read_upload(pipe, None, default_name="a.wav", limit=10, check=refuse_over(10))
    assert pipe.asked == [11]
    assert caught.value.message == "a.wav is 11 bytes"


def test_text_and_other_objects_are_refused_with_what_to_pass_instead():
    with pytest.raises(InvalidRequestError) as text:
        read_upload(
            io.StringIO("hi"), None, default_name="a.wav", limit=10, check=lambda s, n: None
        )
    assert text.value.hint == "open the file with open(path, 'rb')"
    with pytest.raises(InvalidRequestError) as number:
        read_upload(
            42, None, default_name="a.wav", limit=10, check=lambda s, n: None, what="audio file"
        )
    assert number.value.message == (
        "the audio file is a int; pass bytes, a path or a binary file object"
    )
