"""Synthetic hear-me data: a listening service whose window behaves like the real log's.

The generative story, each part with its knob in `SynthConfig` (seqrec/synth/config.py):
- Catalogue (catalog.py): artists with heavy-tailed popularity own consecutive albums (a quarter singles);
  an artist belongs to a genre and to one of its scenes, taste neighbourhoods on a ring (`scenes_per_genre`).
  Some albums come out during the log and the window, with a launch boost (`new_release_share`,
  `release_*`). Trending tracks peak in their scene and reach the neighbouring scenes days later (`hit_*`).
  Every track has six related tracks (the next two on its scene's playlist ring, popular tracks of its scene
  and of a neighbouring one, a track of its artist) and a catchiness (`catchiness_sigma`).
- Listeners (users.py): a demographic segment tilts the genre taste; each user listens in a few scenes
  (`home_scenes`) that drift to neighbouring ones (`taste_drift`) and follows popular artists of them
  (`follows`). Some users are there from the start, the others join at a steady rate (`joined_before`).
  Sessions are log-normally frequent (`sessions_per_day`, `sessions_sigma`), on each user's weekdays and
  peak hours (`weekday_habit`, `hour_habit`). Users range from repeaters, who keep a small rotation, to
  explorers (`discoveries_sigma`).
- Discovery (discovery.py): a session starts from new tracks (`discoveries_per_session`): what autoplay
  brings after the last track the user heard, one of its related tracks (`p_seeded`: a walk through the
  graph), the next track after one of the user's last album runs, sessions later (`p_continue`), a track of
  a followed artist (`p_followed`), the service-wide chart (`p_chart`) or the chart of one of the user's
  scenes (sometimes a neighbouring one, `p_neighbour_scene`), without going back into an album the user
  already started there. Followers play a new album of their artists soon after it is out (`p_release`).
  Starts often run on down the album and into the artist's next one (`p_binge`, `binge_len`,
  `p_artist_binge`), a few tracks per session (`binge_session`), carried on at the next sessions where the
  user stopped (`p_resume`).
- Liking (listening.py): how much of a new track is heard depends on the user's affinity for its scene and
  genre, a followed artist, its catchiness and a taste of the pair's own that stays fixed (`liking_*`). A
  track skipped the first time is not played again; one liked is heard to the end when it comes back. A new
  track heard to the end becomes a favourite with a chance that grows with its catchiness (`adoption`).
- Replays (listening.py): a favourite comes back on its own rhythm, gamma gaps around a period counted in
  the user's own sessions (`period_sessions`, `period_sigma`, `rhythm_shape`), so a track that is due is
  likely to be played soon; the gaps stretch and skips grow as the user tires of it (`replays`,
  `satiation`); a dropped favourite may come back for a short burst after a long pause (`p_rediscover`,
  `rediscover_days`). Replays keep to the part of the day the track was found in (`p_daypart`); a session
  plays its due favourites first, in the order the user found them, then its new tracks; after a replay the
  service may play a related track (`p_radio`).
- Export (export.py): track and artist names, metadata with gaps, and the noise of real exports: duplicate
  rows, negative and absurd durations, timestamps from 1970, tracks missing from the metadata, unsorted rows.
The 15-day window after the log (future.csv) continues the same process; test users are users with history
who listen at least `min_test_events` times in it. `python -m seqrec.synth.calibrate` measures the result
against the facts published about the real log.
"""

from seqrec.synth.config import PRESETS, SynthConfig
from seqrec.synth.generate import Simulation, generate, simulate

__all__ = ["PRESETS", "Simulation", "SynthConfig", "generate", "simulate"]
