"""Reverberant rooms for scene synthesis: simulated shoebox rooms or measured 4-channel room responses.

A room turns one event (a mono signal and its static or moving direction) into FOA / MIC audio with reverberation,
and says which direction it rendered (the direct-path direction, for the labels), at which distance (when it knows
one) and how many samples after the event onset the direct sound arrives (:class:`augment.scenes.EventRender`).

One module per concern:

- :mod:`~augment.rooms.config`: the rooms YAML file (:class:`RoomConfig` ranges and the scene keys it may set).
- :mod:`~augment.rooms.images`: shoebox geometry, the image-source model and its RT60 calibration.
- :mod:`~augment.rooms.switching`: convolution and the crossfaded windows that move a source between responses.
- :mod:`~augment.rooms.simulated`: :class:`SimulatedRoom`, events rendered in a shoebox room.
- :mod:`~augment.rooms.responses`: measured responses from CSV folders and SOFA files.
- :mod:`~augment.rooms.tau_srir`: the TAU-SRIR database (``rirdata.mat`` and ``rirs_NN_<name>.mat``).
- :mod:`~augment.rooms.measured`: :class:`MeasuredRoom`, events rendered with measured responses.
- :mod:`~augment.rooms.selection`: which room each clip of a dataset is rendered in (:func:`open_rooms`).
"""

from augment.rooms.config import SCENE_KEYS, RoomConfig, RoomsFile, load_rooms_config
from augment.rooms.images import Images, ShoeboxRoom, distance_to_walls, image_sources, images_response, sample_room
from augment.rooms.measured import MeasuredRoom, measured_room_count, open_response_sets
from augment.rooms.responses import MEASURED_PRE_SAMPLES, ResponseSet, read_response_csv, read_sofa
from augment.rooms.selection import RoomsSpec, open_rooms, room_for_clip
from augment.rooms.simulated import SimulatedRoom, fibonacci_grid
from augment.rooms.switching import crossfade_windows, render_switched
from augment.rooms.tau_srir import (TAU_FOLDER, TAU_INFO_FILE, TauResponses, TauRoom, read_tau_srir, tau_srir_folder,
                                    tau_srir_rooms)
from augment.scenes import EventRender, RoomAcoustics

__all__ = [
    "RoomConfig", "RoomsFile", "SCENE_KEYS", "load_rooms_config", "ShoeboxRoom", "sample_room", "distance_to_walls",
    "Images", "image_sources", "images_response", "EventRender", "RoomAcoustics", "crossfade_windows",
    "render_switched", "fibonacci_grid", "SimulatedRoom", "ResponseSet", "read_response_csv", "read_sofa",
    "open_response_sets", "MeasuredRoom", "MEASURED_PRE_SAMPLES", "TAU_INFO_FILE", "TAU_FOLDER", "TauRoom",
    "TauResponses", "tau_srir_folder", "tau_srir_rooms", "read_tau_srir", "measured_room_count", "RoomsSpec",
    "open_rooms", "room_for_clip",
]
